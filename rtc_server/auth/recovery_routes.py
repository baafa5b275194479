"""Placeholder until this feature lands."""

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
