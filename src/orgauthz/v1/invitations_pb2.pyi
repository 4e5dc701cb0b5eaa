import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InvitationStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INVITATION_STATUS_UNSPECIFIED: _ClassVar[InvitationStatus]
    INVITATION_STATUS_PENDING: _ClassVar[InvitationStatus]
    INVITATION_STATUS_ACCEPTED: _ClassVar[InvitationStatus]
    INVITATION_STATUS_REJECTED: _ClassVar[InvitationStatus]
    INVITATION_STATUS_REVOKED: _ClassVar[InvitationStatus]
    INVITATION_STATUS_EXPIRED: _ClassVar[InvitationStatus]

class InvitationOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INVITATION_OUTCOME_UNSPECIFIED: _ClassVar[InvitationOutcome]
    INVITATION_OUTCOME_INVITED: _ClassVar[InvitationOutcome]
    INVITATION_OUTCOME_ALREADY_MEMBER: _ClassVar[InvitationOutcome]
    INVITATION_OUTCOME_ALREADY_INVITED: _ClassVar[InvitationOutcome]
    INVITATION_OUTCOME_ERROR: _ClassVar[InvitationOutcome]
INVITATION_STATUS_UNSPECIFIED: InvitationStatus
INVITATION_STATUS_PENDING: InvitationStatus
INVITATION_STATUS_ACCEPTED: InvitationStatus
INVITATION_STATUS_REJECTED: InvitationStatus
INVITATION_STATUS_REVOKED: InvitationStatus
INVITATION_STATUS_EXPIRED: InvitationStatus
INVITATION_OUTCOME_UNSPECIFIED: InvitationOutcome
INVITATION_OUTCOME_INVITED: InvitationOutcome
INVITATION_OUTCOME_ALREADY_MEMBER: InvitationOutcome
INVITATION_OUTCOME_ALREADY_INVITED: InvitationOutcome
INVITATION_OUTCOME_ERROR: InvitationOutcome

class Invitation(_message.Message):
    __slots__ = ("id", "organization", "email", "org_role", "status", "invited_by", "accepted_by", "expires_at", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    ORG_ROLE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    INVITED_BY_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_BY_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    organization: str
    email: str
    org_role: str
    status: InvitationStatus
    invited_by: str
    accepted_by: str
    expires_at: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., organization: _Optional[str] = ..., email: _Optional[str] = ..., org_role: _Optional[str] = ..., status: _Optional[_Union[InvitationStatus, str]] = ..., invited_by: _Optional[str] = ..., accepted_by: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateInvitationsRequest(_message.Message):
    __slots__ = ("organization", "emails", "org_role", "expires_in_seconds")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    EMAILS_FIELD_NUMBER: _ClassVar[int]
    ORG_ROLE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    organization: str
    emails: _containers.RepeatedScalarFieldContainer[str]
    org_role: str
    expires_in_seconds: int
    def __init__(self, organization: _Optional[str] = ..., emails: _Optional[_Iterable[str]] = ..., org_role: _Optional[str] = ..., expires_in_seconds: _Optional[int] = ...) -> None: ...

class InvitationResult(_message.Message):
    __slots__ = ("email", "outcome", "invitation", "token", "error")
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    INVITATION_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    email: str
    outcome: InvitationOutcome
    invitation: Invitation
    token: str
    error: str
    def __init__(self, email: _Optional[str] = ..., outcome: _Optional[_Union[InvitationOutcome, str]] = ..., invitation: _Optional[_Union[Invitation, _Mapping]] = ..., token: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class CreateInvitationsResponse(_message.Message):
    __slots__ = ("results", "revision")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[InvitationResult]
    revision: int
    def __init__(self, results: _Optional[_Iterable[_Union[InvitationResult, _Mapping]]] = ..., revision: _Optional[int] = ...) -> None: ...

class ListInvitationsRequest(_message.Message):
    __slots__ = ("organization", "status", "page_size", "page_token")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    organization: str
    status: InvitationStatus
    page_size: int
    page_token: str
    def __init__(self, organization: _Optional[str] = ..., status: _Optional[_Union[InvitationStatus, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListInvitationsResponse(_message.Message):
    __slots__ = ("invitations", "next_page_token")
    INVITATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    invitations: _containers.RepeatedCompositeFieldContainer[Invitation]
    next_page_token: str
    def __init__(self, invitations: _Optional[_Iterable[_Union[Invitation, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetInvitationRequest(_message.Message):
    __slots__ = ("organization", "id")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    organization: str
    id: str
    def __init__(self, organization: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class GetInvitationResponse(_message.Message):
    __slots__ = ("invitation",)
    INVITATION_FIELD_NUMBER: _ClassVar[int]
    invitation: Invitation
    def __init__(self, invitation: _Optional[_Union[Invitation, _Mapping]] = ...) -> None: ...

class RevokeInvitationRequest(_message.Message):
    __slots__ = ("organization", "id")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    organization: str
    id: str
    def __init__(self, organization: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class RevokeInvitationResponse(_message.Message):
    __slots__ = ("invitation", "revision")
    INVITATION_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    invitation: Invitation
    revision: int
    def __init__(self, invitation: _Optional[_Union[Invitation, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class ResendInvitationRequest(_message.Message):
    __slots__ = ("organization", "id", "expires_in_seconds")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    organization: str
    id: str
    expires_in_seconds: int
    def __init__(self, organization: _Optional[str] = ..., id: _Optional[str] = ..., expires_in_seconds: _Optional[int] = ...) -> None: ...

class ResendInvitationResponse(_message.Message):
    __slots__ = ("invitation", "token", "revision")
    INVITATION_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    invitation: Invitation
    token: str
    revision: int
    def __init__(self, invitation: _Optional[_Union[Invitation, _Mapping]] = ..., token: _Optional[str] = ..., revision: _Optional[int] = ...) -> None: ...

class AcceptInvitationRequest(_message.Message):
    __slots__ = ("token", "user_id", "email")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    token: str
    user_id: str
    email: str
    def __init__(self, token: _Optional[str] = ..., user_id: _Optional[str] = ..., email: _Optional[str] = ...) -> None: ...

class AcceptInvitationResponse(_message.Message):
    __slots__ = ("invitation", "revision")
    INVITATION_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    invitation: Invitation
    revision: int
    def __init__(self, invitation: _Optional[_Union[Invitation, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class RejectInvitationRequest(_message.Message):
    __slots__ = ("token", "user_id", "email")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    token: str
    user_id: str
    email: str
    def __init__(self, token: _Optional[str] = ..., user_id: _Optional[str] = ..., email: _Optional[str] = ...) -> None: ...

class RejectInvitationResponse(_message.Message):
    __slots__ = ("invitation", "revision")
    INVITATION_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    invitation: Invitation
    revision: int
    def __init__(self, invitation: _Optional[_Union[Invitation, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...
