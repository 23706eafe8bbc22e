"""Contains all the data models used in inputs/outputs"""

from .body_login import BodyLogin
from .error_body import ErrorBody
from .health import Health
from .item_create import ItemCreate
from .item_read import ItemRead
from .item_update import ItemUpdate
from .tag_create import TagCreate
from .tag_read import TagRead
from .token import Token
from .user_create import UserCreate
from .user_read import UserRead
from .user_update import UserUpdate
from .user_update_me import UserUpdateMe
from .validation_error_body import ValidationErrorBody
from .validation_issue import ValidationIssue
from .validation_issue_ctx_type_0 import ValidationIssueCtxType0

__all__ = (
    "BodyLogin",
    "ErrorBody",
    "Health",
    "ItemCreate",
    "ItemRead",
    "ItemUpdate",
    "TagCreate",
    "TagRead",
    "Token",
    "UserCreate",
    "UserRead",
    "UserUpdate",
    "UserUpdateMe",
    "ValidationErrorBody",
    "ValidationIssue",
    "ValidationIssueCtxType0",
)
