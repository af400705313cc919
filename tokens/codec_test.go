package tokens

import (
	"reflect"
	"testing"
	"time"
)

func TestRecordRoundTrip(t *testing.T) {
	t.Parallel()
	for _, r := range []Record{
		{},
		{User: "a", Identity: "a\npam\nuid=1\ngid=2\n", Roles: []string{"x", ""}, Issued: time.Unix(5, 6), Expires: time.Unix(7, 8), Superseded: true},
	} {
		got, err := decodeRecord(encodeRecord(r))
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Errorf("round trip: got %+v, %v; want %+v", got, err, r)
		}
	}
}

// FuzzDecodeRecord: a damaged store value gives an error, never a panic, and
// whatever decodes re-encodes to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord(Record{User: "u", Identity: "u\npam\n", Roles: []string{"r"}, Issued: time.Unix(1, 0)}))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 5})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		if _, err := decodeRecord(encodeRecord(r)); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
	})
}
