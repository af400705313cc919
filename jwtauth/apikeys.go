package jwtauth

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/sks-server/sks/httpcred"
	"github.com/sks-server/sks/secretfile"
)

// HMAC API keys follow cyphernode's gatekeeper: a keys file of
// "keyid=hex(key)" lines, and bearer tokens "h.p.s" signed HS256 with the
// key, carrying the key id ("id" claim, or "kid" header) and an exp a few
// seconds ahead. Two encodings are accepted:
//
//   - RFC 7519 compact: base64url without padding, binary signature in
//     base64url, HMAC over "h.p". The key is the 32 decoded bytes; the hex
//     text itself is accepted as the key too, since many clients hand the
//     string from the keys file to their JWT library as the secret.
//   - cyphernode's shell recipe: h and p are padded standard base64 of
//     `echo` output (so the JSON ends in a newline), and s is the lowercase
//     hex HMAC computed by `echo "$h64.$p64" | openssl dgst -hmac "$k"`:
//     the message is "h.p\n" and the key is the 64-character hex text
//     itself, not the bytes it encodes. Later cyphernode docs use echo -n,
//     so "h.p" without the newline is accepted as well.
//
// Both forms are computed only by holders of the key, so accepting them all
// does not weaken the check. Each verified token is remembered until its exp
// so it cannot be used twice; the memory is per process.

// APIKeyBytes is the size of an API key: 256 bits.
const APIKeyBytes = 32

// maxSeen bounds the replay memory. Entries live at most hmac_max_ahead, so
// this allows about maxSeen API-key requests per hmac_max_ahead; beyond
// that, tokens are refused rather than replay protection dropped.
const maxSeen = 1 << 17

// validKeyID is what NewAPIKey accepts as an id.
var validKeyID = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

type apiKey struct {
	raw []byte // the 32 key bytes
	hex []byte // the hex text, as openssl -hmac uses it
}

// APIKeys verifies HMAC API-key tokens against a keys file. It rereads the
// file when it changes (checked at most every two seconds), so keys added
// with NewAPIKey work without a restart. Safe for concurrent use.
type APIKeys struct {
	path     string
	maxAhead time.Duration
	log      *slog.Logger

	mu        sync.Mutex
	keys      map[string]apiKey
	modTime   time.Time
	size      int64
	lastCheck time.Time
	seen      map[[sha256.Size]byte]time.Time
	lastSweep time.Time
	now       func() time.Time
}

// LoadAPIKeys reads the keys file at path (refused if group or others may
// read it). maxAhead is the furthest exp accepted (0 means 60s).
func LoadAPIKeys(path string, maxAhead time.Duration, log *slog.Logger) (*APIKeys, error) {
	if maxAhead <= 0 {
		maxAhead = DefaultHMACMaxAhead
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &APIKeys{path: expandHome(path), maxAhead: maxAhead, log: log, now: time.Now,
		seen: map[[sha256.Size]byte]time.Time{}}
	if err := a.reload(); err != nil {
		return nil, err
	}
	a.lastCheck = time.Now()
	return a, nil
}

// SetClock replaces time.Now; for tests.
func (a *APIKeys) SetClock(now func() time.Time) {
	a.mu.Lock()
	a.now = now
	a.mu.Unlock()
}

// Len returns the number of keys loaded.
func (a *APIKeys) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.keys)
}

// reload reads the file; the caller holds a.mu or owns a.
func (a *APIKeys) reload() error {
	b, err := secretfile.Read(a.path)
	if err != nil {
		return fmt.Errorf("cannot read api keys: %w", err)
	}
	keys, err := parseKeysFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("api keys file %s: %w", a.path, err)
	}
	st, err := os.Stat(a.path)
	if err != nil {
		return fmt.Errorf("cannot read api keys: %w", err)
	}
	a.keys, a.modTime, a.size = keys, st.ModTime(), st.Size()
	return nil
}

// maybeReload rereads the file if it changed; a broken file keeps the old
// keys and is logged.
func (a *APIKeys) maybeReload() {
	if time.Since(a.lastCheck) < 2*time.Second {
		return
	}
	a.lastCheck = time.Now()
	st, err := os.Stat(a.path)
	if err != nil || (st.ModTime().Equal(a.modTime) && st.Size() == a.size) {
		return
	}
	if err := a.reload(); err != nil {
		a.log.Warn("keeping previous api keys", "err", err)
		return
	}
	a.log.Info("api keys reloaded", "keys", len(a.keys))
}

// parseKeysFile reads "keyid=hex" lines; blank lines and lines starting
// with # are ignored. cyphernode's later form
// kapi_id="001";kapi_key="hex";... is understood too. Keys must be 64 hex
// digits (256 bits); duplicate ids are refused.
func parseKeysFile(r io.Reader) (map[string]apiKey, error) {
	keys := map[string]apiKey{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var id, hx string
		if strings.HasPrefix(line, "kapi_id=") {
			for f := range strings.SplitSeq(line, ";") {
				k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
				v = strings.Trim(v, `"`)
				switch k {
				case "kapi_id":
					id = v
				case "kapi_key":
					hx = v
				}
			}
		} else {
			var ok bool
			id, hx, ok = strings.Cut(line, "=")
			if !ok {
				return nil, fmt.Errorf("line %d: want keyid=hex(key)", n)
			}
			id, hx = strings.TrimSpace(id), strings.TrimSpace(hx)
		}
		if !validKeyID.MatchString(id) {
			return nil, fmt.Errorf("line %d: key id %.70q: use 1-64 letters, digits, '.', '_' or '-'", n, id)
		}
		raw, err := hex.DecodeString(hx)
		if err != nil || len(raw) != APIKeyBytes {
			return nil, fmt.Errorf("line %d: key %s: want %d hex digits (256 bits)", n, id, 2*APIKeyBytes)
		}
		if _, dup := keys[id]; dup {
			return nil, fmt.Errorf("line %d: key id %s appears twice", n, id)
		}
		keys[id] = apiKey{raw: raw, hex: []byte(strings.ToLower(hx))}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return keys, nil
}

// NewAPIKey appends a new key with a fresh 256-bit key for id to the keys
// file at path, creating it with mode 0600 if missing, and returns the key
// in hex (give it to the client; it is a secret). An existing file readable
// by group or others, or an id already present, is refused.
func NewAPIKey(path, id string) (string, error) {
	if !validKeyID.MatchString(id) {
		return "", fmt.Errorf("cannot add api key: id %.70q: use 1-64 letters, digits, '.', '_' or '-'", id)
	}
	path = expandHome(path)
	f, err := secretfile.OpenFile("api keys file", path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return "", err
	}
	defer f.Close()
	old, err := io.ReadAll(io.LimitReader(f, secretfile.MaxBytes))
	if err != nil {
		return "", fmt.Errorf("cannot read api keys file: %w", err)
	}
	keys, err := parseKeysFile(bytes.NewReader(old))
	if err != nil {
		return "", fmt.Errorf("api keys file %s: %w", path, err)
	}
	if _, dup := keys[id]; dup {
		return "", fmt.Errorf("cannot add api key: id %s already exists in %s", id, path)
	}
	key := hex.EncodeToString(randomBytes(APIKeyBytes))
	line := id + "=" + key + "\n"
	if len(old) == 0 {
		line = "#keyid=hex(key)\n" + line
	} else if old[len(old)-1] != '\n' {
		line = "\n" + line
	}
	if _, err := f.WriteString(line); err != nil {
		return "", fmt.Errorf("cannot write api keys file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("cannot write api keys file: %w", err)
	}
	return key, nil
}

// apiKeyToken is a parsed, not yet verified, API-key token.
type apiKeyToken struct {
	signed []byte // "h.p", the signed part as sent
	sig    []byte // the 32 signature bytes
	hexSig bool   // signature was written in hex (shell recipe)
	alg    string
	id     string
	exp    int64
}

// decodeB64 accepts base64url or standard base64, padded or not, strictly
// (no stray bits, no whitespace). The signature covers the text as sent,
// so tolerance here cannot be abused.
func decodeB64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "+/") {
		return base64.RawStdEncoding.Strict().DecodeString(s)
	}
	return base64.RawURLEncoding.Strict().DecodeString(s)
}

// parseAPIKeyToken splits and decodes an API-key token without verifying it.
func parseAPIKeyToken(tok string) (*apiKeyToken, error) {
	if len(tok) > MaxTokenBytes {
		return nil, ErrTokenTooLarge
	}
	h64, rest, ok1 := strings.Cut(tok, ".")
	p64, s, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(s, ".") {
		return nil, fmt.Errorf("%w: want three dot-separated parts", ErrMalformed)
	}
	t := &apiKeyToken{signed: []byte(tok[:len(h64)+1+len(p64)])}
	var err error
	if len(s) == 2*sha256.Size {
		t.hexSig = true
		t.sig, err = hex.DecodeString(s)
	} else {
		t.sig, err = base64.RawURLEncoding.Strict().DecodeString(s)
	}
	if err != nil || len(t.sig) != sha256.Size {
		return nil, fmt.Errorf("%w: signature is neither 64 hex digits nor 43 base64url characters", ErrMalformed)
	}
	hb, err := decodeB64(h64)
	if err != nil {
		return nil, fmt.Errorf("%w: header is not base64", ErrMalformed)
	}
	pb, err := decodeB64(p64)
	if err != nil {
		return nil, fmt.Errorf("%w: payload is not base64", ErrMalformed)
	}
	var h struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, fmt.Errorf("%w: header is not a JSON object", ErrMalformed)
	}
	var p struct {
		ID  *string      `json:"id"`
		Exp *json.Number `json:"exp"`
	}
	d := json.NewDecoder(bytes.NewReader(pb))
	d.UseNumber()
	if err := d.Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: payload is not a JSON object", ErrMalformed)
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing data after payload", ErrMalformed)
	}
	t.alg = h.Alg
	switch {
	case p.ID != nil && h.Kid != "" && *p.ID != h.Kid:
		return nil, fmt.Errorf("%w: id claim and kid header differ", ErrMalformed)
	case p.ID != nil:
		t.id = *p.ID
	default:
		t.id = h.Kid
	}
	if t.id == "" {
		return nil, fmt.Errorf("%w: no key id (id claim or kid header)", ErrMalformed)
	}
	if p.Exp == nil {
		return nil, fmt.Errorf("%w: no exp claim", ErrMalformed)
	}
	if t.exp, err = p.Exp.Int64(); err != nil {
		return nil, fmt.Errorf("%w: exp is not an integer", ErrMalformed)
	}
	return t, nil
}

// lookup finds the key for a token id: the id itself, or "key"+id, because
// cyphernode's first keys.properties names key001 the key of id "001".
func (a *APIKeys) lookup(id string) (string, apiKey, bool) {
	if k, ok := a.keys[id]; ok {
		return id, k, true
	}
	if k, ok := a.keys["key"+id]; ok {
		return "key" + id, k, true
	}
	return "", apiKey{}, false
}

// macMatches checks every accepted construction in constant time each.
func macMatches(t *apiKeyToken, k apiKey) bool {
	msgs := [][]byte{t.signed}
	if t.hexSig {
		msgs = append(msgs, append(append([]byte{}, t.signed...), '\n'))
	}
	ok := false
	for _, key := range [][]byte{k.raw, k.hex} {
		for _, m := range msgs {
			mac := hmac.New(sha256.New, key)
			mac.Write(m)
			if hmac.Equal(mac.Sum(nil), t.sig) {
				ok = true
			}
		}
	}
	return ok
}

// Verify checks the request's "Authorization: Bearer" API-key token; see
// VerifyToken.
func (a *APIKeys) Verify(r *http.Request) (keyID string, err error) {
	tok, ok := httpcred.Bearer(r)
	if !ok {
		return "", ErrNoCredential
	}
	return a.VerifyToken(tok)
}

// VerifyToken checks an API-key token and spends it: size, alg HS256, a
// known key id, the signature, exp in the future but at most
// hmac_max_ahead away, and that it was not used before. It returns the key
// id as written in the keys file.
func (a *APIKeys) VerifyToken(tok string) (keyID string, err error) {
	defer func() {
		if err != nil {
			a.log.Debug("api key token refused", "reason", err, "token", shortHash(tok))
		}
	}()
	t, err := parseAPIKeyToken(tok)
	if err != nil {
		return "", fmt.Errorf("cannot parse api key token: %w", err)
	}
	if t.alg != "HS256" {
		return "", fmt.Errorf("cannot verify api key token: %w: %.20q", ErrBadAlgorithm, t.alg)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.maybeReload()
	name, k, ok := a.lookup(t.id)
	if !ok {
		return "", fmt.Errorf("cannot verify api key token: %w %.70q", ErrUnknownKey, t.id)
	}
	if !macMatches(t, k) {
		return "", fmt.Errorf("cannot verify api key token %s: %w", name, ErrBadSignature)
	}
	now := a.now()
	exp := time.Unix(t.exp, 0)
	if !exp.After(now) {
		return "", fmt.Errorf("cannot verify api key token %s: %w", name, ErrExpired)
	}
	if exp.Sub(now) > a.maxAhead {
		return "", fmt.Errorf("cannot verify api key token %s: %w: exp is %s ahead, at most %s", name, ErrTooFarAhead, exp.Sub(now).Round(time.Second), a.maxAhead)
	}
	if err := a.spend(name, t.sig, exp, now); err != nil {
		return "", fmt.Errorf("cannot verify api key token %s: %w", name, err)
	}
	return name, nil
}

// spend records a verified signature until exp; the caller holds a.mu.
func (a *APIKeys) spend(name string, sig []byte, exp, now time.Time) error {
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte{0})
	h.Write(sig)
	var id [sha256.Size]byte
	h.Sum(id[:0])
	if until, ok := a.seen[id]; ok && until.After(now) {
		return ErrReplay
	}
	if len(a.seen) >= maxSeen || now.Sub(a.lastSweep) > time.Second {
		for k, until := range a.seen {
			if !until.After(now) {
				delete(a.seen, k)
			}
		}
		a.lastSweep = now
	}
	if len(a.seen) >= maxSeen {
		a.log.Warn("api key replay cache is full; refusing tokens until some expire", "entries", len(a.seen))
		return ErrReplayCacheFull
	}
	a.seen[id] = exp
	return nil
}
