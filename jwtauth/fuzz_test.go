package jwtauth

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func FuzzParseAPIKeyToken(f *testing.F) {
	f.Add("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9Cg==.eyJpZCI6IjAwMSIsImV4cCI6MTc5NTQyNzg2N30K.56a41059940a23f3c6b5f37e0fdb9b64d3d761632d986ea09be486ff118a7ee6")
	f.Add("eyJhbGciOiJIUzI1NiIsImtpZCI6ImtleTAwMiJ9.eyJleHAiOjE3OTU0Mjc4Njd9.c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmE")
	f.Add("a.b.c")
	f.Add("..")
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := parseAPIKeyToken(tok)
		if err != nil {
			return
		}
		if p.id == "" || len(p.sig) != 32 || len(tok) > MaxTokenBytes {
			t.Fatalf("accepted %q as %+v", tok, p)
		}
		if !strings.HasPrefix(tok, string(p.signed)+".") {
			t.Fatalf("signed part %q is not the token's prefix", p.signed)
		}
	})
}

func FuzzKeysFile(f *testing.F) {
	f.Add(seedKeys)
	f.Add(`kapi_id="003";kapi_key="b9b8d527a1a27af2ad1697db3521f883760c342fc386dbc42c4efbb1a4d5e0af";kapi_groups="watcher"`)
	f.Add("a=\nb")
	f.Fuzz(func(t *testing.T, s string) {
		keys, err := parseKeysFile(strings.NewReader(s))
		if err != nil {
			return
		}
		// Whatever was accepted survives a round trip through the simple form.
		var b strings.Builder
		for id, k := range keys {
			if len(k.raw) != APIKeyBytes || !validKeyID.MatchString(id) {
				t.Fatalf("accepted key %q: %d bytes", id, len(k.raw))
			}
			fmt.Fprintf(&b, "%s=%s\n", id, k.hex)
		}
		again, err := parseKeysFile(strings.NewReader(b.String()))
		if err != nil || !reflect.DeepEqual(again, keys) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzParseTTL(f *testing.F) {
	for _, s := range []string{"3600", "1h", "PT1H", "P1DT2H30M", "P2W", "pt0.5s", "-1", "1e300", "NaN"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseTTL(s)
		if err == nil && d < 0 {
			t.Fatalf("parseTTL(%q) = %s", s, d)
		}
	})
}

func FuzzTokenRequest(f *testing.F) {
	f.Add([]byte("{\n\"type\": \"client\",\n}"))
	f.Add([]byte(`{"sub":"w","claims":{"permissions":["a:b",],},"ttl":"1h"}`))
	f.Add([]byte(`{"claims":{"s":"a,}\"],"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := parseTokenRequest(b)
		if err != nil {
			return
		}
		for k := range req.Claims {
			if reserved[k] || k == "peer_type" {
				t.Fatalf("reserved claim %q accepted", k)
			}
		}
	})
}

// FuzzDropTrailingCommas checks that valid JSON keeps its meaning.
func FuzzDropTrailingCommas(f *testing.F) {
	f.Add([]byte(`{"a":[1,2,{"b":",]"}],"c":"\\",}"}`))
	f.Add([]byte(`[",", ",]", "\",}"]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var want any
		if json.Unmarshal(b, &want) != nil {
			return
		}
		var got any
		if err := json.Unmarshal(dropTrailingCommas(b), &got); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%q became %q: %v", b, dropTrailingCommas(b), err)
		}
	})
}

func FuzzVerify(f *testing.F) {
	priv, _, err := GenKeypair(f.TempDir(), "ES256")
	if err != nil {
		f.Fatal(err)
	}
	i, err := Open(Config{SigningKey: priv}, nil)
	if err != nil {
		f.Fatal(err)
	}
	tok, _, _ := i.SessionJWT("a", "r", "s", "x", nil)
	orig, err := i.Verify(tok)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tok)
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, s string) {
		// A different spelling of the same signed bytes (non-canonical
		// base64 bits) may pass; different contents must not.
		c, err := i.Verify(s)
		if err == nil && (c.ID != orig.ID || c.Subject != orig.Subject || c.SID != orig.SID) {
			t.Fatalf("Verify accepted a forged token %q: %+v", s, c)
		}
	})
}
