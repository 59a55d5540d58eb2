package cabi

import (
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/volleyhq/volley/async"
)

// FuzzMetadataFromC: decoding metadata from a C pointer (walking its
// length fields, never strlen) errs but never panics, agrees with
// async.DecodeMetadata on the block it finds, and leaves no C allocation.
func FuzzMetadataFromC(f *testing.F) {
	f.Add([]byte(nil))
	f.Add(async.EncodeMetadata(arrow.NewMetadata([]string{"k\x00"}, []string{"\x00v\x00"})))
	f.Add(async.EncodeMetadata(arrow.NewMetadata([]string{"a", "bb", ""}, []string{"", "x", "yyy"})))
	f.Add([]byte{1, 0, 0, 0, 255, 255, 255, 127})
	f.Add([]byte{255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		before := LiveCAllocations()
		md, err := decodeViaC(b)
		if LiveCAllocations() != before {
			t.Fatal("C allocation left")
		}
		if err != nil {
			return
		}
		n, perr := async.MetadataPrefixLen(b)
		if len(b) == 0 {
			n, perr = 0, nil
		}
		if perr != nil {
			t.Fatalf("bridge decoded %q that MetadataPrefixLen rejects: %v", b, perr)
		}
		want, err := async.DecodeMetadata(b[:n])
		if err != nil {
			t.Fatal(err)
		}
		if !md.Equal(want) {
			t.Fatalf("bridge %v, async %v", md, want)
		}
		// Round trip: what it decoded encodes to the block it read.
		if enc := async.EncodeMetadata(md); md.Len() > 0 && string(enc) != string(b[:n]) {
			t.Fatalf("re-encoding %v gave %q, read %q", md, enc, b[:n])
		}
	})
}
