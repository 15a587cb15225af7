"""Personalize's error codes; the API layer turns them into the wire shapes botocore recognises."""

from __future__ import annotations


class PersonalizeError(Exception):
    code = "InvalidInputException"
    # REST-JSON (runtime, events) statuses as the models declare them; JSON 1.1 always answers 400.
    rest_status = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidInput(PersonalizeError):
    code = "InvalidInputException"


class ResourceNotFound(PersonalizeError):
    code = "ResourceNotFoundException"
    rest_status = 404


class ResourceAlreadyExists(PersonalizeError):
    code = "ResourceAlreadyExistsException"


class ResourceInUse(PersonalizeError):
    code = "ResourceInUseException"
    rest_status = 409


class LimitExceeded(PersonalizeError):
    code = "LimitExceededException"


class TooManyTags(PersonalizeError):
    code = "TooManyTagsException"


class UnknownOperation(PersonalizeError):
    code = "UnknownOperationException"
    rest_status = 404  # REST: no operation at that path (JSON 1.1 answers 400, as for every error)
