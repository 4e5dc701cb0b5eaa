import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AclEntry(_message.Message):
    __slots__ = ("subject", "level", "grant")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    GRANT_FIELD_NUMBER: _ClassVar[int]
    subject: str
    level: str
    grant: bool
    def __init__(self, subject: _Optional[str] = ..., level: _Optional[str] = ..., grant: _Optional[bool] = ...) -> None: ...

class Acl(_message.Message):
    __slots__ = ("workspace", "object", "entries", "revision", "updated_at")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    object: str
    entries: _containers.RepeatedCompositeFieldContainer[AclEntry]
    revision: int
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, workspace: _Optional[str] = ..., object: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[AclEntry, _Mapping]]] = ..., revision: _Optional[int] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SetAclRequest(_message.Message):
    __slots__ = ("workspace", "object", "entries", "expected_revision")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    object: str
    entries: _containers.RepeatedCompositeFieldContainer[AclEntry]
    expected_revision: int
    def __init__(self, workspace: _Optional[str] = ..., object: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[AclEntry, _Mapping]]] = ..., expected_revision: _Optional[int] = ...) -> None: ...

class SetAclResponse(_message.Message):
    __slots__ = ("acl", "revision")
    ACL_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    acl: Acl
    revision: int
    def __init__(self, acl: _Optional[_Union[Acl, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class GetAclRequest(_message.Message):
    __slots__ = ("workspace", "object")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    object: str
    def __init__(self, workspace: _Optional[str] = ..., object: _Optional[str] = ...) -> None: ...

class GetAclResponse(_message.Message):
    __slots__ = ("acl", "work_pool", "governed_by")
    ACL_FIELD_NUMBER: _ClassVar[int]
    WORK_POOL_FIELD_NUMBER: _ClassVar[int]
    GOVERNED_BY_FIELD_NUMBER: _ClassVar[int]
    acl: Acl
    work_pool: str
    governed_by: Acl
    def __init__(self, acl: _Optional[_Union[Acl, _Mapping]] = ..., work_pool: _Optional[str] = ..., governed_by: _Optional[_Union[Acl, _Mapping]] = ...) -> None: ...

class ListAclsRequest(_message.Message):
    __slots__ = ("workspace", "kind", "page_size", "page_token")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    kind: str
    page_size: int
    page_token: str
    def __init__(self, workspace: _Optional[str] = ..., kind: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAclsResponse(_message.Message):
    __slots__ = ("acls", "next_page_token")
    ACLS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    acls: _containers.RepeatedCompositeFieldContainer[Acl]
    next_page_token: str
    def __init__(self, acls: _Optional[_Iterable[_Union[Acl, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ClearAclRequest(_message.Message):
    __slots__ = ("workspace", "object", "expected_revision")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    object: str
    expected_revision: int
    def __init__(self, workspace: _Optional[str] = ..., object: _Optional[str] = ..., expected_revision: _Optional[int] = ...) -> None: ...

class ClearAclResponse(_message.Message):
    __slots__ = ("revision",)
    REVISION_FIELD_NUMBER: _ClassVar[int]
    revision: int
    def __init__(self, revision: _Optional[int] = ...) -> None: ...

class SetDeploymentWorkPoolRequest(_message.Message):
    __slots__ = ("workspace", "deployment", "work_pool")
    WORKSPACE_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    WORK_POOL_FIELD_NUMBER: _ClassVar[int]
    workspace: str
    deployment: str
    work_pool: str
    def __init__(self, workspace: _Optional[str] = ..., deployment: _Optional[str] = ..., work_pool: _Optional[str] = ...) -> None: ...

class SetDeploymentWorkPoolResponse(_message.Message):
    __slots__ = ("revision",)
    REVISION_FIELD_NUMBER: _ClassVar[int]
    revision: int
    def __init__(self, revision: _Optional[int] = ...) -> None: ...
