package cabi

/*
#include "bridge.h"
*/
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/volleyhq/volley/async"
)

// maxMetadataLen bounds how far the bridge walks encoded metadata it only has
// a pointer to.
const maxMetadataLen = 64 << 20

// metadataFromC decodes the encoded metadata at md (NULL is empty metadata).
// It learns the block's length by walking its own length fields (never
// strlen: the encoding contains zero bytes), then decodes a bounded view of
// exactly that length; the result is a copy.
func metadataFromC(md *C.char) (arrow.Metadata, error) {
	return metadataFromCLimit(md, maxMetadataLen)
}

// metadataFromCLimit is metadataFromC with the walk bounded by limit bytes.
func metadataFromCLimit(md *C.char, limit int) (arrow.Metadata, error) {
	if md == nil {
		return arrow.Metadata{}, nil
	}
	n := int(C.vl_metadata_len(md, C.int64_t(limit)))
	if n < 0 {
		return arrow.Metadata{}, fmt.Errorf("%w: metadata is not validly encoded (or longer than %d bytes)", async.ErrInvalid, limit)
	}
	view := unsafe.Slice((*byte)(unsafe.Pointer(md)), n)
	if m, err := async.MetadataPrefixLen(view); err != nil || m != n {
		return arrow.Metadata{}, fmt.Errorf("%w: metadata: bad encoding (%v)", async.ErrInvalid, err)
	}
	return async.DecodeMetadata(view)
}

// metadataToC returns a C copy (vl_malloc) of md's encoding (NULL when md
// is empty) and its length; the caller frees it with C.vl_free.
func metadataToC(md arrow.Metadata) (*C.char, int) {
	enc := async.EncodeMetadata(md)
	if len(enc) == 0 {
		return nil, 0
	}
	return (*C.char)(C.vl_copy(unsafe.Pointer(&enc[0]), C.int64_t(len(enc)))), len(enc)
}

// decodeViaC copies b into C memory and decodes it the way the bridge
// decodes metadata it only has a pointer to, the walk bounded by len(b) (for
// the fuzz test: a real pointer has no known end).
func decodeViaC(b []byte) (arrow.Metadata, error) {
	if len(b) == 0 {
		return metadataFromCLimit(nil, 0)
	}
	c := C.vl_copy(unsafe.Pointer(&b[0]), C.int64_t(len(b)))
	defer C.vl_free(c)
	return metadataFromCLimit((*C.char)(c), len(b))
}
