package bus

import "time"

// CallTimeout bounds one request to the bus (a publish, a KV read or
// write, opening a consumer). A request caught on a connection to a
// server that died never gets its answer; bounded, it is tried again on
// the reconnected connection within seconds, instead of waiting out the
// caller's own (a saga step's minute).
const CallTimeout = 4 * time.Second
