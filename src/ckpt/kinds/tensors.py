"""torch tensors, written zero-copy and loadable without running torch.load.

Plain pickle writes a tensor's storage as `torch.storage._load_from_bytes(bytes)`,
which copies the data into the pickle and, on load, runs `torch.load` with
`weights_only=False` — a full, unrestricted unpickler hidden inside. ckpt
writes instead

    torch.as_strided(TensorBase.view(torch.from_numpy(<bytes>), dtype), size, stride, offset)

where <bytes> is a numpy uint8 array over the storage's own memory, which
numpy pickles as a protocol-5 out-of-band buffer (an aligned archive member,
never copied). Every name is a plain function (no `functools.partial`, whose
keyword arguments `torch.frombuffer` would need and which the model hubs'
scanners flag), and any dtype, bfloat16 and float8 included, is a view of bytes.
Tensors that share a storage share one buffer and one base, so views stay
views. Tensors with Python attributes, subclasses and `requires_grad` go
through `torch._tensor._rebuild_from_type_v2`, which applies the state to
the new tensor (a result of autograd comes back as a leaf that requires
grad, as from torch.save: the graph that made it is not saved). Conjugate
and negative views are written as the values they show. Anything else
(non-CPU, sparse, quantized, odd storage sizes) is left to torch's own
reduction (`__reduce_ex__`), which the safe loader refuses: a sparse tensor's
indices are not validated outside torch.load, so loading one from an
untrusted file could read out of bounds.
"""

from __future__ import annotations

import sys
from typing import Any

from ckpt.kinds.rewrap import Call
from ckpt.objects.decompose import PROTOCOL


class TensorReducer:
    """One per pickler: remembers the base built for each storage."""

    def __init__(self) -> None:
        self._bases: dict[tuple[int, int, Any], Call] = {}
        self._bytes: dict[tuple[int, int, Any], Any] = {}
        """The numpy uint8 array written for each storage (numpy hands its memory over as the buffer)."""

    def __call__(self, tensor: Any) -> Any:
        torch = sys.modules["torch"]
        if tensor.is_conj() or tensor.is_neg():
            # a lazy view: write the values it shows (a new storage; the view link is lost)
            tensor = tensor.resolve_conj().resolve_neg()
        if not _plain(torch, tensor):
            return tensor.__reduce_ex__(PROTOCOL)  # torch's own
        args = (self._base(torch, tensor), tuple(tensor.shape), tuple(tensor.stride()), tensor.storage_offset())
        state = torch._utils._get_obj_state(tensor)
        if tensor.requires_grad:
            state = _with_requires_grad(state)
        if type(tensor) is torch.Tensor and not state:
            return torch.as_strided, args
        return torch._tensor._rebuild_from_type_v2, (torch.as_strided, type(tensor), args, state)

    def storages(self) -> dict[int, Any]:
        """The dtype each storage was written as, by the address of its bytes."""
        return {raw.__array_interface__["data"][0]: key[2] for key, raw in self._bytes.items()}

    def bytes_of(self, tensor: Any) -> Any:
        """The numpy array of the storage `tensor` was written from, if this reducer wrote it."""
        return self._bytes.get(_key(tensor))

    def _base(self, torch: Any, tensor: Any) -> Call:
        """The whole storage as a 1-d tensor of the dtype, built once per storage and dtype."""
        storage = tensor.untyped_storage()
        key = _key(tensor)
        if key not in self._bases:
            raw = self._bytes[key] = torch.tensor([], dtype=torch.uint8).set_(storage).numpy()
            self._bases[key] = Call(torch._C.TensorBase.view, Call(torch.from_numpy, raw), tensor.dtype)
        return self._bases[key]


def _key(tensor: Any) -> tuple[int, int, Any]:
    """A tensor's storage, as the bases are keyed: its memory, its size, and the dtype it is read as."""
    storage = tensor.untyped_storage()
    return storage.data_ptr(), storage.nbytes(), tensor.dtype


def _plain(torch: Any, tensor: Any) -> bool:
    """A dense CPU tensor whose memory can be handed over as bytes."""
    if tensor.device.type != "cpu" or tensor.layout is not torch.strided or tensor.is_quantized:
        return False
    storage_bytes = tensor.untyped_storage().nbytes()
    return storage_bytes % tensor.element_size() == 0


def _with_requires_grad(state: Any) -> Any:
    """Object state that also sets requires_grad (on the leaf view `as_strided` returns)."""
    if isinstance(state, tuple):
        attrs, slots = state
        return ({**(attrs or {}), "requires_grad": True}, slots)
    return {**(state or {}), "requires_grad": True}


def tensor_types() -> tuple[type, ...]:
    """The tensor classes to hand to `TensorReducer` (none if torch is not imported).
    Parameters are not among them: their own reduction rebuilds them from
    `.data`, a plain tensor, which comes here."""
    torch = sys.modules.get("torch")
    return () if torch is None else (torch.Tensor,)
