package async_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/volleyhq/volley/async"
)

func mdEqual(a, b arrow.Metadata) bool {
	return slices.Equal(a.Keys(), b.Keys()) && slices.Equal(a.Values(), b.Values())
}

func TestMetadataRoundTrip(t *testing.T) {
	cases := map[string]arrow.Metadata{
		"empty":      {},
		"one":        arrow.NewMetadata([]string{"k"}, []string{"v"}),
		"zero bytes": arrow.NewMetadata([]string{"k\x00ey", "\x00", ""}, []string{"v\x00a\x00l", "", "\x00\x00"}),
		"utf8":       arrow.NewMetadata([]string{"ключ", "volley.placement"}, []string{"значение", "cuda:0 (hint)"}),
	}
	for name, md := range cases {
		t.Run(name, func(t *testing.T) {
			enc := async.EncodeMetadata(md)
			if md.Len() == 0 && enc != nil {
				t.Fatalf("empty metadata encodes to %v, want nil (NULL)", enc)
			}
			if got := async.EncodedMetadataLen(md); got != len(enc) {
				t.Errorf("EncodedMetadataLen = %d, encoding has %d bytes", got, len(enc))
			}
			dec, err := async.DecodeMetadata(enc)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !mdEqual(dec, md) {
				t.Errorf("round trip: got %q=%q, want %q=%q", dec.Keys(), dec.Values(), md.Keys(), md.Values())
			}
			if md.Len() > 0 {
				n, err := async.MetadataPrefixLen(append(slices.Clone(enc), "trailing"...))
				if err != nil || n != len(enc) {
					t.Errorf("MetadataPrefixLen = %d, %v; want %d", n, err, len(enc))
				}
			}
		})
	}
}

func TestMetadataEncodingLayout(t *testing.T) {
	enc := async.EncodeMetadata(arrow.NewMetadata([]string{"a\x00"}, []string{"xyz"}))
	want := []byte{1, 0, 0, 0, 2, 0, 0, 0, 'a', 0, 3, 0, 0, 0, 'x', 'y', 'z'}
	if !bytes.Equal(enc, want) {
		t.Fatalf("encoding %v, want %v", enc, want)
	}
}

func le32(v int32) []byte { return binary.LittleEndian.AppendUint32(nil, uint32(v)) }

func TestDecodeMetadataErrors(t *testing.T) {
	valid := async.EncodeMetadata(arrow.NewMetadata([]string{"key"}, []string{"value"}))
	cases := map[string][]byte{
		"short count":          {1, 0},
		"negative count":       le32(-1),
		"count lies":           slices.Concat(le32(1000), le32(0)),
		"huge count":           le32(1 << 30),
		"truncated key length": slices.Concat(le32(1), []byte{3, 0}),
		"key runs past end":    slices.Concat(le32(1), le32(10), []byte("abc")),
		"negative key length":  slices.Concat(le32(1), le32(-5), le32(0)),
		"value runs past end":  slices.Concat(le32(1), le32(1), []byte("k"), le32(100), []byte("v")),
		"missing value":        slices.Concat(le32(1), le32(1), []byte("k")),
		"trailing bytes":       append(slices.Clone(valid), 0),
		"truncated":            valid[:len(valid)-1],
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := async.DecodeMetadata(b); !errors.Is(err, async.ErrInvalid) {
				t.Errorf("DecodeMetadata(%v) = %v, want an error wrapping ErrInvalid", b, err)
			}
		})
	}
	if md, err := async.DecodeMetadata(nil); err != nil || md.Len() != 0 {
		t.Errorf("DecodeMetadata(nil) = %v, %v; want empty (NULL)", md, err)
	}
}

// FuzzDecodeMetadata: decoding never panics, and whatever decodes
// re-encodes to the same bytes.
func FuzzDecodeMetadata(f *testing.F) {
	f.Add([]byte{})
	f.Add(le32(0))
	f.Add(async.EncodeMetadata(arrow.NewMetadata([]string{"k\x00"}, []string{"\x00v"})))
	f.Add(async.EncodeMetadata(arrow.NewMetadata([]string{"a", "b"}, []string{"", "c"})))
	f.Add(slices.Concat(le32(1), le32(-1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		md, err := async.DecodeMetadata(b)
		if err != nil {
			if !errors.Is(err, async.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if len(b) == 0 {
			return
		}
		var re []byte
		if md.Len() == 0 {
			re = async.AppendMetadata(nil, md) // a zero count is valid, not NULL
		} else {
			re = async.EncodeMetadata(md)
		}
		if !bytes.Equal(re, b) {
			t.Fatalf("encode(decode(%v)) = %v", b, re)
		}
	})
}
