// Package async is the Arrow C Device Data Interface's async device stream
// protocol in Go: the consumer allocates a [Handler], the producer calls it
// (OnSchema, then OnNextTask per batch, then nil for end of stream, or
// OnError), and the consumer paces the producer with [Producer.Request] and may
// [Producer.Cancel] at any time. Every rule of the protocol is written down in
// shared/SPEC.md with a stable ID (O1…D6); the docs in this package name those
// IDs where a rule applies.
//
// The package knows nothing of SQL, of devices' internals or of cgo. It holds
//
//   - the vocabulary: [DeviceType], [Device], the metadata codec
//     ([EncodeMetadata], [DecodeMetadata]) and [Error] with errno codes;
//   - the contract: [Handler], [Producer], [Task], [DeviceBatch];
//   - the pull side that adapters implement: [Source] and [Batch];
//   - the runtime [Produce], which turns any Source into a conformant
//     producer, and the consumer helper [Reader].
//
// # Decisions
//
// [Device] (type plus ordinal) lives here rather than in devicebuf, because
// the batch type a task yields names its device and the C bridge needs it
// without knowing how devices are managed. devicebuf adds the inventory and
// the memory management.
package async
