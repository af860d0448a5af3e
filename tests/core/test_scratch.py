"""scratch_like: views of one flat buffer per (thread, device, dtype, slot), grown to the largest request; kept_like:
a tensor kept across calls under a key."""

import threading

import torch

from biocircuits.core.scratch import kept_like, scratch_like


def test_views_share_one_buffer_per_slot_and_grow_to_the_largest_request():
    small = torch.zeros(2, 3)
    a = scratch_like(small, slot=7)
    assert a.shape == (2, 3) and a.is_contiguous() and a.dtype == torch.float32
    b = scratch_like(torch.zeros(6), slot=7)
    assert b.data_ptr() == a.data_ptr()  # the same memory: reused, not allocated again
    big = scratch_like(torch.zeros(4, 5), slot=7)
    assert big.shape == (4, 5) and big.untyped_storage().nbytes() >= 20 * 4
    assert scratch_like(small, slot=7).data_ptr() == big.data_ptr()  # later smaller requests use the grown buffer
    other = scratch_like(small, slot=8)
    assert other.data_ptr() != big.data_ptr()  # another slot: another buffer
    assert scratch_like(small, slot=7, dtype=torch.float64).dtype == torch.float64


def test_each_thread_has_its_own_buffers():
    mine = scratch_like(torch.zeros(3), slot=9).data_ptr()
    theirs = []
    thread = threading.Thread(target=lambda: theirs.append(scratch_like(torch.zeros(3), slot=9).data_ptr()))
    thread.start()
    thread.join()
    assert theirs[0] != mine


def test_kept_like_returns_the_same_tensor_until_the_shape_dtype_or_device_changes():
    store = {}
    a = kept_like(store, "w", torch.zeros(2, 3))
    assert a.shape == (2, 3) and store["w"] is a
    assert kept_like(store, "w", torch.ones(2, 3)) is a  # kept: no new tensor
    assert kept_like(store, "w", torch.ones(3, 2)).shape == (3, 2)  # a new shape: made afresh
    assert kept_like(store, "w", torch.ones(3, 2, dtype=torch.float64)).dtype == torch.float64
    assert kept_like(store, "w", torch.ones(3, 2).t()).is_contiguous()  # contiguous whatever the source's layout
