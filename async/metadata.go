package async

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
)

// The metadata encoding of ArrowSchema.metadata, used by the async protocol
// for per-task metadata, the producer's additional metadata and error
// metadata: an int32 pair count, then per pair an int32 key length, the key
// bytes, an int32 value length and the value bytes, in native byte order
// (little-endian on every platform Volley builds for). Keys and values may
// contain zero bytes, so encoded metadata is never a C string.

// EncodeMetadata returns the binary encoding of md, or nil when md has no
// pairs (the protocol's NULL).
func EncodeMetadata(md arrow.Metadata) []byte {
	if md.Len() == 0 {
		return nil
	}
	return AppendMetadata(make([]byte, 0, EncodedMetadataLen(md)), md)
}

// EncodedMetadataLen returns the length in bytes of md's encoding (0 when md
// has no pairs).
func EncodedMetadataLen(md arrow.Metadata) int {
	if md.Len() == 0 {
		return 0
	}
	n := 4
	for i := range md.Len() {
		n += 8 + len(md.Keys()[i]) + len(md.Values()[i])
	}
	return n
}

// AppendMetadata appends the encoding of md to dst. With no pairs it appends
// a zero count.
func AppendMetadata(dst []byte, md arrow.Metadata) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(md.Len()))
	for i := range md.Len() {
		k, v := md.Keys()[i], md.Values()[i]
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(k)))
		dst = append(dst, k...)
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(v)))
		dst = append(dst, v...)
	}
	return dst
}

// DecodeMetadata decodes one encoded metadata block that fills b exactly.
// An empty or nil b is the protocol's NULL and decodes to empty metadata.
// Negative counts or lengths, lengths that run past the end and trailing
// bytes are errors wrapping [ErrInvalid]; DecodeMetadata never panics and
// never allocates more than b's length justifies.
func DecodeMetadata(b []byte) (arrow.Metadata, error) {
	if len(b) == 0 {
		return arrow.Metadata{}, nil
	}
	md, n, err := decodeMetadataPrefix(b)
	if err != nil {
		return arrow.Metadata{}, err
	}
	if n != len(b) {
		return arrow.Metadata{}, fmt.Errorf("%w: metadata: %d trailing bytes after %d pairs", ErrInvalid, len(b)-n, md.Len())
	}
	return md, nil
}

// MetadataPrefixLen returns the length of the encoded metadata block that
// starts b (which may run on past it), or an error when b does not start
// with a complete, valid block. The C bridge uses it to learn the length of
// metadata it only has a pointer to.
func MetadataPrefixLen(b []byte) (int, error) {
	_, n, err := decodeMetadataPrefix(b)
	return n, err
}

func decodeMetadataPrefix(b []byte) (arrow.Metadata, int, error) {
	off := 0
	readLen := func(what string, i int) (int, error) {
		if len(b)-off < 4 {
			return 0, fmt.Errorf("%w: metadata: truncated %s length of pair %d at byte %d", ErrInvalid, what, i, off)
		}
		n := int32(binary.LittleEndian.Uint32(b[off:]))
		off += 4
		if n < 0 {
			return 0, fmt.Errorf("%w: metadata: negative %s length %d in pair %d", ErrInvalid, what, n, i)
		}
		if int(n) > len(b)-off {
			return 0, fmt.Errorf("%w: metadata: %s of pair %d claims %d bytes, %d remain", ErrInvalid, what, i, n, len(b)-off)
		}
		return int(n), nil
	}
	if len(b) < 4 {
		return arrow.Metadata{}, 0, fmt.Errorf("%w: metadata: %d bytes, too short for the pair count", ErrInvalid, len(b))
	}
	count := int32(binary.LittleEndian.Uint32(b))
	off = 4
	if count < 0 {
		return arrow.Metadata{}, 0, fmt.Errorf("%w: metadata: negative pair count %d", ErrInvalid, count)
	}
	// Each pair takes at least 8 bytes: a count that cannot fit is a lie, and
	// must not make us allocate.
	if int64(count) > int64(len(b)-4)/8 || count > math.MaxInt32/8 {
		return arrow.Metadata{}, 0, fmt.Errorf("%w: metadata: pair count %d does not fit in %d bytes", ErrInvalid, count, len(b))
	}
	keys := make([]string, count)
	vals := make([]string, count)
	for i := range int(count) {
		n, err := readLen("key", i)
		if err != nil {
			return arrow.Metadata{}, 0, err
		}
		keys[i] = string(b[off : off+n])
		off += n
		if n, err = readLen("value", i); err != nil {
			return arrow.Metadata{}, 0, err
		}
		vals[i] = string(b[off : off+n])
		off += n
	}
	return arrow.NewMetadata(keys, vals), off, nil
}
