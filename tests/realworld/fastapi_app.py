"""A small FastAPI service for the corpus (tests/realworld/corpus.py): a
module-level `app`, as `uvicorn fastapi_app:app` would serve it, and an app
factory `create_app()`, both on one router whose models and responses use
typing generics (Optional, dict[str, list[int]], Literal).

Imported only by the FastAPI cases: a child that runs them imports FastAPI.
"""

from __future__ import annotations

import threading
from typing import Literal, Optional

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query
from pydantic import BaseModel


class Item(BaseModel):
    name: str
    tags: list[str] = []
    price: Optional[float] = None


class Listing(BaseModel):
    order: Literal["asc", "desc"]
    ids: list[int]


router = APIRouter(prefix="/items")
STORE: dict[int, Item] = {1: Item(name="lamp", tags=["home"], price=12.5)}


def page_size(limit: int = Query(10, ge=1, le=100)) -> int:
    return limit


@router.get("/{item_id}", response_model=Item)
def read_item(item_id: int) -> Item:
    if item_id not in STORE:
        raise HTTPException(status_code=404, detail="no such item")
    return STORE[item_id]


@router.get("/", response_model=Listing)
def list_items(order: Literal["asc", "desc"] = "asc", limit: int = Depends(page_size)) -> Listing:
    ids = sorted(STORE, reverse=order == "desc")[:limit]
    return Listing(order=order, ids=ids)


@router.post("/", response_model=dict[str, list[int]], status_code=201)
def create_item(item: Item) -> dict[str, list[int]]:
    STORE[max(STORE) + 1] = item
    return {"ids": sorted(STORE)}


app = FastAPI(title="inventory")
app.include_router(router)


def create_app() -> FastAPI:
    """The same service from a factory, with a lock of its own in `app.state`."""
    made = FastAPI(title="inventory (factory)")
    made.include_router(router)
    made.state.lock = threading.Lock()
    return made
