package guard

import (
	"bytes"
	"testing"
	"time"
)

// FuzzDecodeEntry: a persisted value of any bytes decodes or is refused,
// never panics, and what decodes survives an encode and decode unchanged.
func FuzzDecodeEntry(f *testing.F) {
	f.Add(encodeEntry(entry{first: time.Unix(1700000000, 5), failed: 3}))
	f.Add(encodeEntry(entry{first: time.Unix(1700000000, 0), bannedUntil: time.Unix(1700000900, 0)}))
	f.Add([]byte{1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, ok := decodeEntry(b)
		if !ok {
			return
		}
		if e.failed < 0 || e.failed > 1<<20 {
			t.Fatalf("failed = %d out of bounds", e.failed)
		}
		again := encodeEntry(e)
		e2, ok := decodeEntry(again)
		if !ok || !e2.first.Equal(e.first) || e2.failed != e.failed || !e2.bannedUntil.Equal(e.bannedUntil) {
			t.Fatalf("round trip: %x -> %+v -> %x -> %+v", b, e, again, e2)
		}
		if !bytes.Equal(encodeEntry(e2), again) {
			t.Fatalf("encoding not stable: %x", again)
		}
	})
}
