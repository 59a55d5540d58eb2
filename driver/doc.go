// Package driver is Volley's database/sql-style layer: the small contract
// adapters implement ([Driver], [Conn], [Request]), the registry ([Register],
// [Drivers], [Open]), a [DB] with a bounded connection pool, and queries that
// start at once and stream their result as an async device stream onto the
// device a placement policy picked for that query.
//
// # Optional capabilities
//
// A [Conn] may implement any of these small interfaces; the pool finds them
// by type assertion through [As], which walks [Wrapper.Unwrap] so wrappers do
// not hide them:
//
//   - [Estimator]: result size estimate, asked only when placement needs it;
//   - [Validator], [Pinger], [SessionResetter]: connection health on reuse;
//   - [ServerCanceler]: cancel the running statement on the server;
//   - [Partitioner]: partitioned execution;
//   - [DeviceProducer]: batches already on a device;
//   - [Transactor]: transactions.
package driver
