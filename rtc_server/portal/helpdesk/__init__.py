"""The Help Desk: questions and problems sent to the clinic's help-desk staff,
their replies, and the form for people who cannot sign in."""
