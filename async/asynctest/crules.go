package asynctest

// cRules are the rules of shared/SPEC.md that Go code cannot observe: they
// concern C structs, C pointers' lifetimes and the ArrowDeviceArray layout.
// The C ABI bridge (async/cabi) checks them with C programs.
var cRules = []struct{ id, why string }{
	{"O1", "the consumer allocates and fills the C handler struct"},
	{"O3", "the producer frees its C struct only after release returned"},
	{"O4", "neither side touches the other's private_data"},
	{"O5", "the handler is initialised before the producer's entry point is called"},
	{"S2", "the ArrowSchema is moved or released by the consumer, no pointer kept"},
	{"S3", "on_schema returns 0 or an errno code (an int)"},
	{"N4", "the ArrowAsyncTask pointer is valid only during on_next_task; copied by value"},
	{"N5", "task metadata pointers are valid only during the call"},
	{"E3", "on_error's message and metadata pointers are valid only during the call"},
	{"E4", "codes crossing the boundary are errno-compatible ints"},
	{"T2", "extract_data(task, NULL) frees the task state (Go: Task.Discard)"},
	{"T3", "the extracted ArrowDeviceArray is released through out->array.release"},
	{"D1", "structs, buffers arrays, children and dictionary are CPU memory"},
	{"D2", "sync_event is allocated by the producer and lives until the array's release"},
	{"D3", "reserved is zeroed"},
	{"D4", "a non-NULL sync_event is recorded after the data is complete and waited on (CUDA)"},
	{"D5", "device_id is -1 for the CPU, the CUDA ordinal otherwise"},
	{"D6", "a move is a bitwise copy plus release = NULL on the source"},
	{"ABI", "struct sizes and offsets of the async structs and ArrowDeviceArray"},
}

// CRuleIDs lists the IDs of the rules only observable from C, which the
// Go checks do not cover: O1, O3, O4, O5, S2, S3, N4, N5, E3, E4, T2 (the
// NULL form), T3, D1–D6 and the ABI layout ("ABI"). [CRuleReason] says why
// each is C-only.
func CRuleIDs() []string {
	ids := make([]string, len(cRules))
	for i, r := range cRules {
		ids[i] = r.id
	}
	return ids
}

// CRuleReason returns what rule id (one of [CRuleIDs]) is about, or "".
func CRuleReason(id string) string {
	for _, r := range cRules {
		if r.id == id {
			return r.why
		}
	}
	return ""
}
