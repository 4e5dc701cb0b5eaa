from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CheckRequest(_message.Message):
    __slots__ = ("subject", "workspace", "organization", "scope", "min_revision", "explain", "object")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    MIN_REVISION_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    subject: str
    workspace: str
    organization: str
    scope: str
    min_revision: int
    explain: bool
    object: str
    def __init__(self, subject: _Optional[str] = ..., workspace: _Optional[str] = ..., organization: _Optional[str] = ..., scope: _Optional[str] = ..., min_revision: _Optional[int] = ..., explain: _Optional[bool] = ..., object: _Optional[str] = ...) -> None: ...

class CheckResponse(_message.Message):
    __slots__ = ("allowed", "revision", "reasons")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    revision: int
    reasons: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, allowed: _Optional[bool] = ..., revision: _Optional[int] = ..., reasons: _Optional[_Iterable[str]] = ...) -> None: ...

class BatchCheckRequest(_message.Message):
    __slots__ = ("items", "min_revision")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MIN_REVISION_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[CheckRequest]
    min_revision: int
    def __init__(self, items: _Optional[_Iterable[_Union[CheckRequest, _Mapping]]] = ..., min_revision: _Optional[int] = ...) -> None: ...

class BatchCheckResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[CheckResponse]
    def __init__(self, results: _Optional[_Iterable[_Union[CheckResponse, _Mapping]]] = ...) -> None: ...

class ListScopesRequest(_message.Message):
    __slots__ = ("subject", "workspace", "organization", "min_revision", "object")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    MIN_REVISION_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    subject: str
    workspace: str
    organization: str
    min_revision: int
    object: str
    def __init__(self, subject: _Optional[str] = ..., workspace: _Optional[str] = ..., organization: _Optional[str] = ..., min_revision: _Optional[int] = ..., object: _Optional[str] = ...) -> None: ...

class ListScopesResponse(_message.Message):
    __slots__ = ("scopes", "revision")
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    scopes: _containers.RepeatedScalarFieldContainer[str]
    revision: int
    def __init__(self, scopes: _Optional[_Iterable[str]] = ..., revision: _Optional[int] = ...) -> None: ...

class PlanObjectsRequest(_message.Message):
    __slots__ = ("subject", "workspace", "kind", "scope", "min_revision")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    MIN_REVISION_FIELD_NUMBER: _ClassVar[int]
    subject: str
    workspace: str
    kind: str
    scope: str
    min_revision: int
    def __init__(self, subject: _Optional[str] = ..., workspace: _Optional[str] = ..., kind: _Optional[str] = ..., scope: _Optional[str] = ..., min_revision: _Optional[int] = ...) -> None: ...

class PlanObjectsResponse(_message.Message):
    __slots__ = ("kind", "ids", "revision")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[PlanObjectsResponse.Kind]
        ALL: _ClassVar[PlanObjectsResponse.Kind]
        ALL_EXCEPT: _ClassVar[PlanObjectsResponse.Kind]
        ONLY: _ClassVar[PlanObjectsResponse.Kind]
    KIND_UNSPECIFIED: PlanObjectsResponse.Kind
    ALL: PlanObjectsResponse.Kind
    ALL_EXCEPT: PlanObjectsResponse.Kind
    ONLY: PlanObjectsResponse.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    kind: PlanObjectsResponse.Kind
    ids: _containers.RepeatedScalarFieldContainer[str]
    revision: int
    def __init__(self, kind: _Optional[_Union[PlanObjectsResponse.Kind, str]] = ..., ids: _Optional[_Iterable[str]] = ..., revision: _Optional[int] = ...) -> None: ...

class ListAccessibleWorkspacesRequest(_message.Message):
    __slots__ = ("subject", "min_revision", "page_size", "page_token")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    MIN_REVISION_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    subject: str
    min_revision: int
    page_size: int
    page_token: str
    def __init__(self, subject: _Optional[str] = ..., min_revision: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class AccessibleWorkspace(_message.Message):
    __slots__ = ("workspace", "organization", "scopes")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    organization: str
    scopes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, workspace: _Optional[str] = ..., organization: _Optional[str] = ..., scopes: _Optional[_Iterable[str]] = ...) -> None: ...

class ListAccessibleWorkspacesResponse(_message.Message):
    __slots__ = ("workspaces", "next_page_token", "revision")
    WORKSPACES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    workspaces: _containers.RepeatedCompositeFieldContainer[AccessibleWorkspace]
    next_page_token: str
    revision: int
    def __init__(self, workspaces: _Optional[_Iterable[_Union[AccessibleWorkspace, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., revision: _Optional[int] = ...) -> None: ...

class AuthenticateRequest(_message.Message):
    __slots__ = ("api_key", "min_revision")
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    MIN_REVISION_FIELD_NUMBER: _ClassVar[int]
    api_key: str
    min_revision: int
    def __init__(self, api_key: _Optional[str] = ..., min_revision: _Optional[int] = ...) -> None: ...

class AuthenticateResponse(_message.Message):
    __slots__ = ("service_account", "organization", "subject", "user", "revision")
    SERVICE_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    service_account: str
    organization: str
    subject: str
    user: str
    revision: int
    def __init__(self, service_account: _Optional[str] = ..., organization: _Optional[str] = ..., subject: _Optional[str] = ..., user: _Optional[str] = ..., revision: _Optional[int] = ...) -> None: ...
