// Package devicebuf knows the devices a stream can land on and moves CPU
// record batches onto them.
//
// A [Manager] holds the device inventory (the CPU, and for every GPU of
// every [Backend] a pinned-host entry cuda_host:N and a device entry
// cuda:N) and hands out [async.Mover] values that copy batches onto one
// device. Two backends implement GPUs: the CUDA driver API loaded at run
// time through purego ([NewCUDA], no cgo), and a simulated GPU for tests
// ([NewSimulated]) whose device memory is not host addressable, whose copies
// complete on a stream goroutine and whose memory starts poisoned.
//
// Movement to a GPU goes through a pool of pinned host slabs allocated once
// per device: the buffers of a batch are packed into slabs (many small
// buffers become one copy), each slab is copied asynchronously into a device
// block taken from the mover's own pool, and one event recorded after the
// batch's last copy becomes the batch's sync event. Move returns once the
// copies are enqueued, so the producer goes on with the next batch while the
// copy runs; when every slab is in flight, Move waits (honouring its ctx)
// for one to come back.
//
// Only buffer contents live on the device: the [async.DeviceArray] tree,
// its buffer lists, children and dictionary are Go memory (SPEC.md D1). The
// buffer order is the Arrow C data interface's for each type.
package devicebuf
