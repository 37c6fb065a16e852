"""UI pages (being written)."""

from fastapi import APIRouter, Depends

from brewslm.web.ui import require_login

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_login)])
