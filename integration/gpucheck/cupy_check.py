#!/usr/bin/env python3
"""Step 4 of Volley's GPU check: a Python consumer of libvolley's C API.

The consumer is written with ctypes only (plus CuPy for --device cuda:0): it
allocates an ArrowAsyncDeviceStreamHandler (include/volley/abi.h) with
CFUNCTYPE callbacks, hands it to volley_produce_demo_on (include/volley/
volley.h) and checks every batch of the demo stream (id int64 counting 0, 1,
2, ... over the stream; name utf8 "r<id>"). Callbacks may arrive on threads
the library owns; they are serialized (shared/SPEC.md TH1).

Modes:
  --device cpu                  reads the id column through ctypes and checks
                                every value and the batch sums (validates the
                                struct layouts and the callback protocol)
  --device cuda:0 --simulated   Volley's simulated GPU: checks device type,
                                device id, sync event and non-NULL buffers;
                                device addresses are never dereferenced
  --device cuda:0               a real GPU through CuPy: waits on each batch's
                                sync event on a CuPy stream, sums the id
                                column on the GPU without a copy, checks the
                                pointer is device memory, releases the batch;
                                at the end GPU free memory must be back at its
                                baseline. --backend driver does the same with
                                the CUDA driver API through ctypes (a copy
                                back instead of a GPU sum), for machines
                                without CuPy and for a fake libcuda in tests
  --device cuda_host:0          pinned host batches: waits on the event, then
                                reads the buffers like --device cpu

Prints one line "RESULT: PASS ..." or "RESULT: FAIL ..." and exits 0 or 2.
"""

import argparse
import ctypes
import errno
import os
import sys
import threading
import time

# ---------------------------------------------------------------------------
# The ABI (include/volley/abi.h); sizes checked at start-up against the
# layout shared/SPEC.md pins for x86-64.

ARROW_DEVICE_CPU = 1
ARROW_DEVICE_CUDA = 2
ARROW_DEVICE_CUDA_HOST = 3


class ArrowSchema(ctypes.Structure):
    pass


ArrowSchema._fields_ = [
    ("format", ctypes.c_char_p),
    ("name", ctypes.c_char_p),
    ("metadata", ctypes.c_void_p),  # binary, zero bytes inside: never c_char_p
    ("flags", ctypes.c_int64),
    ("n_children", ctypes.c_int64),
    ("children", ctypes.POINTER(ctypes.POINTER(ArrowSchema))),
    ("dictionary", ctypes.POINTER(ArrowSchema)),
    ("release", ctypes.CFUNCTYPE(None, ctypes.POINTER(ArrowSchema))),
    ("private_data", ctypes.c_void_p),
]


class ArrowArray(ctypes.Structure):
    pass


ArrowArray._fields_ = [
    ("length", ctypes.c_int64),
    ("null_count", ctypes.c_int64),
    ("offset", ctypes.c_int64),
    ("n_buffers", ctypes.c_int64),
    ("n_children", ctypes.c_int64),
    ("buffers", ctypes.POINTER(ctypes.c_void_p)),
    ("children", ctypes.POINTER(ctypes.POINTER(ArrowArray))),
    ("dictionary", ctypes.POINTER(ArrowArray)),
    ("release", ctypes.CFUNCTYPE(None, ctypes.POINTER(ArrowArray))),
    ("private_data", ctypes.c_void_p),
]


class ArrowDeviceArray(ctypes.Structure):
    _fields_ = [
        ("array", ArrowArray),
        ("device_id", ctypes.c_int64),
        ("device_type", ctypes.c_int32),
        ("sync_event", ctypes.c_void_p),
        ("reserved", ctypes.c_int64 * 3),
    ]


class ArrowAsyncTask(ctypes.Structure):
    pass


ArrowAsyncTask._fields_ = [
    ("extract_data", ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ArrowAsyncTask),
                                      ctypes.POINTER(ArrowDeviceArray))),
    ("private_data", ctypes.c_void_p),
]


class ArrowAsyncProducer(ctypes.Structure):
    pass


ArrowAsyncProducer._fields_ = [
    ("device_type", ctypes.c_int32),
    ("request", ctypes.CFUNCTYPE(None, ctypes.POINTER(ArrowAsyncProducer), ctypes.c_int64)),
    ("cancel", ctypes.CFUNCTYPE(None, ctypes.POINTER(ArrowAsyncProducer))),
    ("additional_metadata", ctypes.c_void_p),
    ("private_data", ctypes.c_void_p),
]


class ArrowAsyncDeviceStreamHandler(ctypes.Structure):
    pass


H = ctypes.POINTER(ArrowAsyncDeviceStreamHandler)
ON_SCHEMA = ctypes.CFUNCTYPE(ctypes.c_int, H, ctypes.POINTER(ArrowSchema))
ON_NEXT_TASK = ctypes.CFUNCTYPE(ctypes.c_int, H, ctypes.POINTER(ArrowAsyncTask), ctypes.c_void_p)
ON_ERROR = ctypes.CFUNCTYPE(None, H, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
RELEASE = ctypes.CFUNCTYPE(None, H)

ArrowAsyncDeviceStreamHandler._fields_ = [
    ("on_schema", ON_SCHEMA),
    ("on_next_task", ON_NEXT_TASK),
    ("on_error", ON_ERROR),
    ("release", RELEASE),
    ("producer", ctypes.POINTER(ArrowAsyncProducer)),
    ("private_data", ctypes.c_void_p),
]


def check_layout():
    """The x86-64 layout of shared/SPEC.md ("The ABI")."""
    want = [
        (ctypes.sizeof(ArrowSchema), 72, "ArrowSchema"),
        (ctypes.sizeof(ArrowArray), 80, "ArrowArray"),
        (ctypes.sizeof(ArrowDeviceArray), 128, "ArrowDeviceArray"),
        (ArrowDeviceArray.device_id.offset, 80, "ArrowDeviceArray.device_id"),
        (ArrowDeviceArray.device_type.offset, 88, "ArrowDeviceArray.device_type"),
        (ArrowDeviceArray.sync_event.offset, 96, "ArrowDeviceArray.sync_event"),
        (ArrowDeviceArray.reserved.offset, 104, "ArrowDeviceArray.reserved"),
        (ctypes.sizeof(ArrowAsyncTask), 16, "ArrowAsyncTask"),
        (ctypes.sizeof(ArrowAsyncProducer), 40, "ArrowAsyncProducer"),
        (ArrowAsyncProducer.request.offset, 8, "ArrowAsyncProducer.request"),
        (ArrowAsyncProducer.cancel.offset, 16, "ArrowAsyncProducer.cancel"),
        (ArrowAsyncProducer.additional_metadata.offset, 24, "ArrowAsyncProducer.additional_metadata"),
        (ArrowAsyncProducer.private_data.offset, 32, "ArrowAsyncProducer.private_data"),
        (ctypes.sizeof(ArrowAsyncDeviceStreamHandler), 48, "ArrowAsyncDeviceStreamHandler"),
        (ArrowAsyncDeviceStreamHandler.producer.offset, 32, "handler.producer"),
        (ArrowAsyncDeviceStreamHandler.private_data.offset, 40, "handler.private_data"),
    ]
    return ["%s is %d, want %d" % (name, got, w) for got, w, name in want if got != w]


def parse_metadata(addr):
    """Decodes ArrowSchema.metadata-encoded pairs at addr (NULL: None):
    int32 count, then per pair int32 length + key + int32 length + value."""
    if not addr:
        return None
    i32 = lambda a: ctypes.c_int32.from_address(a).value  # noqa: E731
    n, p, out = i32(addr), addr + 4, []
    if n < 0 or n > 1 << 20:
        raise ValueError("metadata pair count %d" % n)
    for _ in range(n):
        kl = i32(p)
        k = ctypes.string_at(p + 4, kl)
        p += 4 + kl
        vl = i32(p)
        v = ctypes.string_at(p + 4, vl)
        p += 4 + vl
        out.append((k, v))
    return out


# ---------------------------------------------------------------------------
# GPU access: CuPy, or the CUDA driver API through ctypes.


class CupyGPU:
    """Zero-copy views of device batches through CuPy."""

    name = "cupy"

    def __init__(self, ordinal, rows):
        import cupy  # noqa: F401 (ImportError is the caller's message)

        self.cp = cupy
        self.ordinal = ordinal
        self.dev = cupy.cuda.Device(ordinal)
        self.dev.use()
        self.stream = cupy.cuda.Stream(non_blocking=True)
        # Warm up (context, the very reduction the batches get, pool) before
        # the baseline, so that only Volley's memory is in the comparison.
        with self.dev, self.stream:
            n = max(rows, 1024)
            int(cupy.arange(n, dtype=cupy.int64).sum(dtype=cupy.int64).get(stream=self.stream))
        self.stream.synchronize()
        cupy.get_default_memory_pool().free_all_blocks()

    def mem_free(self):
        with self.dev:
            self.cp.cuda.runtime.deviceSynchronize()
            self.cp.get_default_memory_pool().free_all_blocks()
            return self.cp.cuda.runtime.memGetInfo()[0]

    def wait_host(self, sync_event):
        """Blocks until the batch's event fired (for host-readable batches)."""
        if sync_event:
            ev = ctypes.c_void_p.from_address(sync_event).value
            with self.dev:
                self.cp.cuda.runtime.eventSynchronize(ev)

    def device_sum(self, sync_event, ptr, n):
        """Waits on the event on the CuPy stream, sums n int64 at ptr on the
        GPU; returns (sum, memory type)."""
        cp = self.cp
        with self.dev, self.stream:
            if sync_event:
                ev = ctypes.c_void_p.from_address(sync_event).value
                if not ev:
                    raise RuntimeError("sync_event points to a NULL CUevent")
                cp.cuda.runtime.streamWaitEvent(self.stream.ptr, ev, 0)
            attrs = cp.cuda.runtime.pointerGetAttributes(ptr)
            mtype = getattr(attrs, "type", None)
            if mtype is None:
                mtype = getattr(attrs, "memoryType", -1)
            mem = cp.cuda.UnownedMemory(ptr, n * 8, None, self.ordinal)
            arr = cp.ndarray((n,), cp.int64, cp.cuda.MemoryPointer(mem, 0))
            s = int(arr.sum(dtype=cp.int64).get(stream=self.stream))
            # Nothing may still read the buffer once the array is released.
            self.stream.synchronize()
        return s, int(mtype)


class DriverGPU:
    """The CUDA driver API through ctypes: events, pointer attributes and a
    copy back to the host (no CuPy needed)."""

    name = "driver"

    def __init__(self, ordinal, libname):
        self.cu = ctypes.CDLL(libname)
        self.ordinal = ordinal
        self._ok(self.cu.cuInit(0), "cuInit")
        d = ctypes.c_int()
        self._ok(self.cu.cuDeviceGet(ctypes.byref(d), ordinal), "cuDeviceGet")
        self.dev = d.value
        self.ctx = ctypes.c_void_p()
        self._ok(self.cu.cuDevicePrimaryCtxRetain(ctypes.byref(self.ctx), self.dev), "cuDevicePrimaryCtxRetain")
        self.cu.cuCtxPushCurrent_v2.argtypes = [ctypes.c_void_p]
        self.cu.cuEventSynchronize.argtypes = [ctypes.c_void_p]
        self.cu.cuPointerGetAttribute.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64]
        self.cu.cuMemcpyDtoH_v2.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_size_t]

    @staticmethod
    def _ok(rc, what):
        if rc != 0:
            raise RuntimeError("%s: CUresult %d" % (what, rc))

    def _push(self):
        self._ok(self.cu.cuCtxPushCurrent_v2(self.ctx), "cuCtxPushCurrent")

    def _pop(self):
        popped = ctypes.c_void_p()
        self._ok(self.cu.cuCtxPopCurrent_v2(ctypes.byref(popped)), "cuCtxPopCurrent")

    def close(self):
        self.cu.cuDevicePrimaryCtxRelease_v2(self.dev)

    def mem_free(self):
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        self._push()
        try:
            sync = getattr(self.cu, "cuCtxSynchronize", None)  # absent from the tests' fake driver
            if sync is not None:
                self._ok(sync(), "cuCtxSynchronize")
            self._ok(self.cu.cuMemGetInfo_v2(ctypes.byref(free), ctypes.byref(total)), "cuMemGetInfo")
        finally:
            self._pop()
        return free.value

    def wait_host(self, sync_event):
        if sync_event:
            self._push()
            try:
                ev = ctypes.c_void_p.from_address(sync_event).value
                self._ok(self.cu.cuEventSynchronize(ev), "cuEventSynchronize")
            finally:
                self._pop()

    def device_sum(self, sync_event, ptr, n):
        self._push()
        try:
            if sync_event:
                ev = ctypes.c_void_p.from_address(sync_event).value
                if not ev:
                    raise RuntimeError("sync_event points to a NULL CUevent")
                self._ok(self.cu.cuEventSynchronize(ev), "cuEventSynchronize")
            mtype = ctypes.c_uint()
            # CU_POINTER_ATTRIBUTE_MEMORY_TYPE = 2; CU_MEMORYTYPE_DEVICE = 2.
            self._ok(self.cu.cuPointerGetAttribute(ctypes.byref(mtype), 2, ptr), "cuPointerGetAttribute")
            host = (ctypes.c_int64 * n)()
            if n:
                self._ok(self.cu.cuMemcpyDtoH_v2(host, ptr, n * 8), "cuMemcpyDtoH")
        finally:
            self._pop()
        return sum(host), int(mtype.value)


# ---------------------------------------------------------------------------
# The consumer.


class Consumer:
    """The handler's state; every callback is wrapped so that a Python
    exception becomes a recorded failure and a non-zero return (never an
    exception escaping into the producer's thread)."""

    def __init__(self, args, gpu):
        self.args = args
        self.gpu = gpu
        dev = args.device
        self.want_type = {"cpu": ARROW_DEVICE_CPU, "cuda": ARROW_DEVICE_CUDA,
                          "cuda_host": ARROW_DEVICE_CUDA_HOST}[dev.split(":")[0]]
        self.want_id = -1 if self.want_type == ARROW_DEVICE_CPU else int(dev.split(":")[1])
        self.mu = threading.Lock()
        self.failures = []
        self.released = threading.Event()
        self.release_calls = 0
        self.schema_calls = 0
        self.eos_calls = 0
        self.error = None
        self.batches = 0
        self.rows = 0
        self.total = 0
        self.mem_types = set()
        self.callback_threads = set()
        self.producer = None
        self.handler = ArrowAsyncDeviceStreamHandler()
        # The CFUNCTYPE objects must outlive the stream: ctypes frees the
        # thunks with them.
        self._callbacks = [ON_SCHEMA(self._on_schema), ON_NEXT_TASK(self._on_next_task),
                           ON_ERROR(self._on_error), RELEASE(self._release)]
        (self.handler.on_schema, self.handler.on_next_task,
         self.handler.on_error, self.handler.release) = self._callbacks
        self.handler.private_data = None

    def fail(self, msg):
        with self.mu:
            self.failures.append(msg)

    def check(self, cond, msg):
        if not cond:
            self.fail(msg)
        return cond

    def _enter(self, what):
        self.callback_threads.add(threading.get_ident())
        self.check(not self.released.is_set(), "%s after release (E5)" % what)

    # -- callbacks ----------------------------------------------------------

    def _on_schema(self, h, schema):
        try:
            self._enter("on_schema")
            self.schema_calls += 1
            if not self.check(self.schema_calls == 1, "second on_schema (S1)"):
                return errno.EPROTO
            if not self.check(bool(schema) and bool(schema.contents.release), "NULL or released schema"):
                return errno.EINVAL
            s = schema.contents
            fmt = s.format
            kids = []
            for i in range(s.n_children if s.n_children > 0 else 0):
                c = s.children[i].contents
                kids.append((c.name, c.format))
            s.release(schema)  # S2: the schema's contents are ours to release
            self.check(not s.release, "schema release did not mark it released")
            self.check(fmt == b"+s", "schema format %r, want +s" % fmt)
            self.check(kids == [(b"id", b"l"), (b"name", b"u")],
                       "schema children %r, want id:l name:u" % kids)
            if not self.check(bool(h.contents.producer), "handler->producer unset at on_schema (O2)"):
                return errno.EINVAL
            self.producer = h.contents.producer
            p = self.producer.contents
            self.check(p.device_type == self.want_type,
                       "producer device_type %d, want %d (T6)" % (p.device_type, self.want_type))
            md = parse_metadata(p.additional_metadata)
            self.check(md == [(b"volley.demo", b"1\x00x")],
                       "additional_metadata %r, want volley.demo=1\\0x (S6)" % md)
            if self.failures:
                return errno.EINVAL
            p.request(self.producer, self.args.window)  # S5: from inside on_schema
            return 0
        except Exception as e:  # noqa: BLE001
            self.fail("on_schema: %s: %s" % (type(e).__name__, e))
            return errno.EIO

    def _on_next_task(self, h, task, metadata):
        try:
            self._enter("on_next_task")
            if not task:
                self.eos_calls += 1  # N3
                return 0
            # N4: the task pointer is valid only during this call; keep a copy.
            t = ArrowAsyncTask.from_buffer_copy(task.contents)
            self.batches += 1
            idx = self.batches
            md = parse_metadata(metadata)
            self.check(md == [(b"batch", str(idx).encode())],
                       "task %d metadata %r, want batch=%d (N5)" % (idx, md, idx))
            out = ArrowDeviceArray()
            ctypes.memset(ctypes.byref(out), 0xAB, ctypes.sizeof(out))
            rc = t.extract_data(ctypes.byref(t), ctypes.byref(out))  # T1: exactly once
            if not self.check(rc == 0, "batch %d: extract_data returned %d" % (idx, rc)):
                return 0  # T5: on_error follows
            try:
                self._check_batch(idx, out)
            finally:
                self._release_array(idx, out)
            if self.failures:
                return errno.EIO
            self.producer.contents.request(self.producer, 1)  # R2: re-entrant
            return 0
        except Exception as e:  # noqa: BLE001
            self.fail("on_next_task: %s: %s" % (type(e).__name__, e))
            return errno.EIO

    def _on_error(self, h, code, message, metadata):
        try:
            self._enter("on_error")
            msg = ctypes.string_at(message).decode("utf-8", "replace") if message else "(NULL message)"
            self.error = (code, msg)  # E3: copied, the pointers die with the call
            self.fail("on_error: code %d: %s" % (code, msg))
        except Exception as e:  # noqa: BLE001
            self.fail("on_error: %s: %s" % (type(e).__name__, e))

    def _release(self, h):
        try:
            self.callback_threads.add(threading.get_ident())
            with self.mu:
                self.release_calls += 1
            self.check(self.release_calls == 1, "second release (E6)")
        except Exception as e:  # noqa: BLE001
            self.fail("release: %s: %s" % (type(e).__name__, e))
        finally:
            self.released.set()

    # -- batches ------------------------------------------------------------

    def _release_array(self, idx, out):
        rel = out.array.release
        if not self.check(bool(rel), "batch %d: extracted array already released (T3)" % idx):
            return
        rel(ctypes.byref(out.array))  # T3: exactly once
        self.check(not out.array.release, "batch %d: release did not mark the array released" % idx)

    def _check_batch(self, idx, out):
        rows = self.args.rows
        start = (idx - 1) * rows
        want_sum = rows * start + rows * (rows - 1) // 2
        a = out.array
        where = "batch %d" % idx
        ok = self.check(out.device_type == self.want_type,
                        "%s: device_type %d, want %d (T6)" % (where, out.device_type, self.want_type))
        ok &= self.check(out.device_id == self.want_id,
                         "%s: device_id %d, want %d (D5)" % (where, out.device_id, self.want_id))
        ok &= self.check(list(out.reserved) == [0, 0, 0], "%s: reserved not zeroed (D3)" % where)
        if self.want_type == ARROW_DEVICE_CPU:
            ok &= self.check(not out.sync_event, "%s: CPU batch with a sync event" % where)
        elif self.want_type == ARROW_DEVICE_CUDA:
            # CUDA_HOST batches may come without one (D4: ready at once).
            ok &= self.check(bool(out.sync_event), "%s: CUDA batch without a sync event (D2)" % where)
        ok &= self.check(a.length == rows and a.n_children == 2,
                         "%s: length %d children %d, want %d and 2" % (where, a.length, a.n_children, rows))
        if not ok:
            return
        ids = a.children[0].contents
        names = a.children[1].contents
        if not (self.check(ids.length == rows and ids.n_buffers == 2 and ids.null_count == 0,
                           "%s: id child length %d buffers %d nulls %d" % (where, ids.length, ids.n_buffers,
                                                                          ids.null_count))
                and self.check(names.length == rows and names.n_buffers == 3,
                               "%s: name child length %d buffers %d" % (where, names.length, names.n_buffers))):
            return
        id_ptr = ids.buffers[1]
        if rows > 0 and not self.check(bool(id_ptr) and bool(names.buffers[1]) and bool(names.buffers[2]),
                                       "%s: NULL data buffer" % where):
            return
        self.rows += rows
        if rows == 0:
            return
        id_ptr += ids.offset * 8
        if self.args.simulated:
            return  # device addresses that are not host pointers: never dereference
        if self.want_type == ARROW_DEVICE_CUDA:
            got, mtype = self.gpu.device_sum(out.sync_event, id_ptr, rows)
            self.mem_types.add(mtype)
            self.check(mtype == 2, "%s: id buffer memory type %d, want 2 (device)" % (where, mtype))
            self.check(got == want_sum, "%s: GPU sum of ids %d, want %d" % (where, got, want_sum))
            self.total += got
            return
        if self.want_type == ARROW_DEVICE_CUDA_HOST:
            self.gpu.wait_host(out.sync_event)
        vals = (ctypes.c_int64 * rows).from_address(id_ptr)
        got = sum(vals)
        self.check(got == want_sum, "%s: sum of ids %d, want %d" % (where, got, want_sum))
        if got != want_sum or rows <= 100000:
            # Every value, in order (T7), where it is cheap or already wrong.
            bad = next((i for i, v in enumerate(vals) if v != start + i), None)
            self.check(bad is None, "%s: id[%s] = %s, want %s (T7)" % (
                where, bad, None if bad is None else vals[bad], None if bad is None else start + bad))
        self.total += got
        offs = (ctypes.c_int32 * (rows + 1)).from_address(names.buffers[1] + names.offset * 4)
        data = names.buffers[2]
        first = ctypes.string_at(data + offs[0], offs[1] - offs[0])
        last = ctypes.string_at(data + offs[rows - 1], offs[rows] - offs[rows - 1])
        self.check(first == b"r%d" % start and last == b"r%d" % (start + rows - 1),
                   "%s: names %r..%r, want r%d..r%d" % (where, first, last, start, start + rows - 1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lib", default=".cache/lib/libvolley.so", help="libvolley.so (make lib)")
    ap.add_argument("--device", default="cpu", help='"cpu", "cuda:N" or "cuda_host:N"')
    ap.add_argument("--simulated", action="store_true", help="Volley's simulated GPU (no GPU needed)")
    ap.add_argument("--backend", choices=["cupy", "driver"], default="cupy",
                    help="GPU access for real CUDA devices (default cupy)")
    ap.add_argument("--cuda-lib", default="libcuda.so.1", help="the driver for --backend driver")
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--window", type=int, default=4, help="requests outstanding")
    ap.add_argument("--timeout", type=float, default=240, help="seconds to wait for the handler's release")
    ap.add_argument("--mem-tolerance-mib", type=float, default=64,
                    help="GPU free memory may end this far below its baseline (a leaked batch is caught "
                    "by volley_debug_live_allocations; this catches device memory kept by the library)")
    args = ap.parse_args(argv)
    what = "device %s%s, %d batches of %d rows" % (args.device, " (simulated)" if args.simulated else "",
                                                   args.batches, args.rows)

    def finish(failures, extra=""):
        if failures:
            for f in failures[:20]:
                print("  " + f)
            if len(failures) > 20:
                print("  ... and %d more" % (len(failures) - 20))
            print("RESULT: FAIL cupy_check: %s: %s" % (what, failures[0]))
            sys.stdout.flush()
            return 2
        print("RESULT: PASS cupy_check: %s%s" % (what, extra))
        sys.stdout.flush()
        return 0

    bad = check_layout()
    if bad:
        return finish(["ctypes layout: " + b for b in bad])
    kind = args.device.split(":")[0]
    if kind not in ("cpu", "cuda", "cuda_host") or (kind != "cpu" and not args.device.split(":")[-1].isdigit()):
        return finish(["unknown device %r (cpu, cuda:N, cuda_host:N)" % args.device])
    if args.batches < 0 or args.rows < 0 or args.window < 1:
        return finish(["--batches and --rows must be >= 0, --window >= 1"])

    gpu = None
    if kind != "cpu" and not args.simulated:
        ordinal = int(args.device.split(":")[1])
        try:
            gpu = CupyGPU(ordinal, args.rows) if args.backend == "cupy" else DriverGPU(ordinal, args.cuda_lib)
        except ImportError as e:
            return finish(["CuPy is needed for --device %s (pip install cupy-cuda13x, or --backend driver): %s"
                           % (args.device, e)])
        except Exception as e:  # noqa: BLE001
            return finish(["%s backend: %s: %s" % (args.backend, type(e).__name__, e)])
    try:
        lib = ctypes.CDLL(os.path.abspath(args.lib) if os.path.exists(args.lib) else args.lib)
    except OSError as e:
        return finish(["loading %s (build it with make lib): %s" % (args.lib, e)])
    lib.volley_produce_demo_on.argtypes = [ctypes.c_int64, ctypes.c_int64, ctypes.c_char_p, ctypes.c_int, H]
    lib.volley_produce_demo_on.restype = ctypes.c_int
    lib.volley_last_error.restype = ctypes.c_char_p
    lib.volley_debug_live_allocations.restype = ctypes.c_int64

    base_free = gpu.mem_free() if gpu is not None else None
    c = Consumer(args, gpu)
    result = {}

    def produce():
        # The library blocks until the handler's release returned; ctypes
        # drops the GIL for the call, so callbacks on other threads run.
        rc = lib.volley_produce_demo_on(args.batches, args.rows, args.device.encode(),
                                        1 if args.simulated else 0, ctypes.byref(c.handler))
        result["rc"] = rc
        if rc != 0:
            result["err"] = (lib.volley_last_error() or b"").decode("utf-8", "replace")

    t0 = time.monotonic()
    th = threading.Thread(target=produce, name="volley_produce_demo_on", daemon=True)
    th.start()
    if not c.released.wait(args.timeout):
        c.fail("no release within %.0f s (%d batches so far)" % (args.timeout, c.batches))
        rc = finish(list(c.failures))
        os._exit(rc)  # the producer thread is stuck in C: do not wait for it
    th.join(30)
    if th.is_alive():
        c.fail("volley_produce_demo_on did not return within 30 s of the release")
        os._exit(finish(list(c.failures)))
    elapsed = time.monotonic() - t0

    c.check(result.get("rc") == 0, "volley_produce_demo_on = %s (%s)" % (result.get("rc"), result.get("err", "")))
    c.check(c.release_calls == 1, "release called %d times, want 1 (E6)" % c.release_calls)
    c.check(c.schema_calls == 1, "on_schema called %d times, want 1 (S1)" % c.schema_calls)
    c.check(c.eos_calls == 1, "end of stream %d times, want 1 (N3)" % c.eos_calls)
    c.check(c.batches == args.batches, "%d batches, want %d" % (c.batches, args.batches))
    c.check(c.rows == args.batches * args.rows, "%d rows, want %d" % (c.rows, args.batches * args.rows))
    n = args.batches * args.rows
    if not args.simulated:
        c.check(c.total == n * (n - 1) // 2, "sum of ids %d, want %d" % (c.total, n * (n - 1) // 2))
    live = lib.volley_debug_live_allocations()
    c.check(live == 0, "%d library allocations live after the stream (leak)" % live)
    extra = ", %.2f s, callbacks on %d thread(s)" % (elapsed, len(c.callback_threads))
    if not args.simulated:
        extra += ", sum of ids %d" % c.total
    if gpu is not None:
        end_free = gpu.mem_free()
        drop = (base_free - end_free) / float(1 << 20)  # MiB
        c.check(drop <= args.mem_tolerance_mib,
                "GPU free memory %.1f MiB below its baseline after the stream (tolerance %.0f MiB)"
                % (drop, args.mem_tolerance_mib))
        extra += ", %s backend, memory types %s, GPU free memory back to baseline (%+.1f MiB)" % (
            gpu.name, sorted(c.mem_types), (end_free - base_free) / float(1 << 20))
        if isinstance(gpu, DriverGPU):
            gpu.close()
    return finish(list(c.failures), extra)


if __name__ == "__main__":
    sys.exit(main())
