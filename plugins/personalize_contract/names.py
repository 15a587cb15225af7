"""Names of Personalize resources ("CreateDatasetGroup" and every other Create* call's `name`)."""

# Every Create* call's name (and jobName): 1 to 63 characters, a letter or digit first.
NAME_MAX_LENGTH = 63
NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9\-_]*$"
