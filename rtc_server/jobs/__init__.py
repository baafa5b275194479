"""Background work any instance may pick up, claimed in the database and done
once: batched notices (``digest``) and the presence they depend on
(``presence``)."""
