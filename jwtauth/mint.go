package jwtauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// MaxMintBodyBytes bounds the JSON body of POST /token.
const MaxMintBodyBytes = 64 << 10

// TokenRequest is the JSON body of POST /token (OPAL's AccessTokenRequest,
// plus sks's spellings). All fields are optional.
type TokenRequest struct {
	// Type is the peer type, e.g. "client" or "datasource"; it becomes the
	// peer_type claim as in OPAL.
	Type string `json:"type,omitempty"`
	// Subject is the sub claim; "sub" and OPAL's "id" are synonyms. Default:
	// a random UUID, as OPAL does.
	Subject string `json:"subject,omitempty"`
	Sub     string `json:"sub,omitempty"`
	ID      string `json:"id,omitempty"`
	// Claims are extra claims such as permissions (Temporal) or roles
	// (ClusterCockpit). iss, sub, aud, exp, nbf, iat, jti and peer_type are
	// set by the server and may not appear here.
	Claims map[string]any `json:"claims,omitempty"`
	// TTL is the lifetime: seconds as a number, a Go duration ("1h"), or an
	// ISO 8601 duration ("PT1H", "P1D"). "lifetime" is a synonym. Default and
	// maximum: max_ttl.
	TTL      TTL `json:"ttl,omitzero"`
	Lifetime TTL `json:"lifetime,omitzero"`
}

// TTL is a lifetime in a token request; see TokenRequest.TTL.
type TTL struct{ time.Duration }

// MarshalJSON writes whole seconds.
func (t TTL) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatFloat(t.Seconds(), 'f', -1, 64)), nil
}

// UnmarshalJSON reads seconds, a Go duration or an ISO 8601 duration.
func (t *TTL) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err == nil {
		return t.fromSeconds(f)
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("ttl: want seconds, a duration such as \"1h\", or ISO 8601 such as \"PT1H\"")
	}
	d, err := parseTTL(s)
	if err != nil {
		return err
	}
	t.Duration = d
	return nil
}

func (t *TTL) fromSeconds(f float64) error {
	if math.IsNaN(f) || f < 0 || f > 100*365*24*3600 {
		return fmt.Errorf("ttl %v: out of range", f)
	}
	t.Duration = time.Duration(f * float64(time.Second))
	return nil
}

var iso8601 = regexp.MustCompile(`^P(?:(\d{1,6})W)?(?:(\d{1,6})D)?(?:T(?:(\d{1,7})H)?(?:(\d{1,9})M)?(?:(\d{1,10}(?:\.\d{1,9})?)S)?)?$`)

// parseTTL reads "3600", "1h" or "PT1H"/"P1DT2H"/"P2W".
func parseTTL(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		var t TTL
		err := t.fromSeconds(f)
		return t.Duration, err
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return 0, fmt.Errorf("ttl %q is negative", s)
		}
		return d, nil
	}
	m := iso8601.FindStringSubmatch(strings.ToUpper(s))
	if m == nil || s == "P" || strings.HasSuffix(strings.ToUpper(s), "T") {
		return 0, fmt.Errorf("ttl %.40q: want seconds, a duration such as \"1h\", or ISO 8601 such as \"PT1H\"", s)
	}
	var secs float64
	for n, unit := range []float64{7 * 86400, 86400, 3600, 60, 1} {
		if m[n+1] != "" {
			v, _ := strconv.ParseFloat(m[n+1], 64)
			secs += v * unit
		}
	}
	var t TTL
	err := t.fromSeconds(secs)
	return t.Duration, err
}

// TokenResponse is the JSON answer of POST /token: OPAL's AccessToken
// (token, type, details) plus expires_at.
type TokenResponse struct {
	Token     string        `json:"token"`
	Type      string        `json:"type"` // always "bearer", as OPAL answers
	ExpiresAt time.Time     `json:"expires_at"`
	Details   *TokenDetails `json:"details,omitempty"`
}

// TokenDetails is OPAL's TokenDetails: what the token was made for.
type TokenDetails struct {
	// ID is the token's subject (OPAL's request id).
	ID string `json:"id"`
	// Type is the peer type asked for ("client" unless given).
	Type string `json:"type"`
	// Expired is when the token expires (OPAL's name for it).
	Expired time.Time `json:"expired"`
	// Claims are the claims added to the token: peer_type and the
	// request's claims.
	Claims map[string]any `json:"claims"`
}

// dropTrailingCommas removes commas directly before } or ] outside strings.
// OPAL's documented curl sends {"type": "client",}; accepting that costs
// nothing and makes the example work.
func dropTrailingCommas(b []byte) []byte {
	out := make([]byte, 0, len(b))
	inStr, esc := false, false
	for n := 0; n < len(b); n++ {
		c := b[n]
		if inStr {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			out = append(out, c)
			continue
		}
		if c == '"' {
			inStr = true
		}
		if c == ',' {
			j := n + 1
			for j < len(b) && (b[j] == ' ' || b[j] == '\t' || b[j] == '\n' || b[j] == '\r') {
				j++
			}
			if j < len(b) && (b[j] == '}' || b[j] == ']') {
				continue
			}
		}
		out = append(out, c)
	}
	return out
}

// parseTokenRequest decodes and checks a POST /token body.
func parseTokenRequest(body []byte) (*TokenRequest, error) {
	var req TokenRequest
	if len(bytes.TrimSpace(body)) == 0 {
		return &req, nil
	}
	d := json.NewDecoder(bytes.NewReader(dropTrailingCommas(body)))
	d.DisallowUnknownFields()
	if err := d.Decode(&req); err != nil {
		return nil, fmt.Errorf("bad JSON body: %v", err)
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, errors.New("bad JSON body: data after the object")
	}
	subs := 0
	for _, s := range []string{req.Subject, req.Sub, req.ID} {
		if s != "" {
			subs++
		}
	}
	if subs > 1 {
		return nil, errors.New("give only one of subject, sub and id")
	}
	if req.TTL.Duration != 0 && req.Lifetime.Duration != 0 {
		return nil, errors.New("give only one of ttl and lifetime")
	}
	if len(req.Type) > 64 {
		return nil, errors.New("type is too long")
	}
	if _, ok := req.Claims["peer_type"]; ok {
		return nil, errors.New("claim \"peer_type\" is set from type")
	}
	for k := range req.Claims {
		if reserved[k] {
			return nil, fmt.Errorf("claim %q is set by the server", k)
		}
	}
	return &req, nil
}

// MintHandler serves POST /token for holders of the master token (OPAL's
// secure mode) or of an HMAC API key (cyphernode's recipe; each API-key
// token is accepted once): "Authorization: Bearer <credential>" and a
// TokenRequest body (at most 64 KiB) give a TokenResponse. Answers: 401
// without or with a wrong credential (compared in constant time), 400 with
// a message for a bad body or a ttl above max_ttl, 405 for other methods,
// 503 when no signing key, or neither master token nor API keys, are
// configured.
func (i *Issuer) MintHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			jsonError(w, http.StatusMethodNotAllowed, "method not allowed; use POST")
			return
		}
		if (i.ring.Load().master == nil && i.api == nil) || !i.Enabled() {
			i.log.Warn("POST /token refused: jwt signing_key and master_token_file or api_keys_file are needed")
			jsonError(w, http.StatusServiceUnavailable, "token minting is not configured")
			return
		}
		who, ok := i.AdminAuth(r)
		if !ok {
			i.log.Info("POST /token refused: missing or wrong master token or api key token", "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="sks"`)
			jsonError(w, http.StatusUnauthorized, "missing or wrong credential: want the master token or an api key token")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxMintBodyBytes))
		if err != nil {
			jsonError(w, http.StatusBadRequest, fmt.Sprintf("cannot read body (at most %d bytes): %v", MaxMintBodyBytes, err))
			return
		}
		req, err := parseTokenRequest(body)
		if err != nil {
			jsonError(w, http.StatusBadRequest, err.Error())
			return
		}
		resp, err := i.mintRequest(req)
		if err != nil {
			status := http.StatusBadRequest
			if !errors.Is(err, ErrTTLTooLong) && !errors.Is(err, ErrInvalidClaims) && !errors.Is(err, ErrTokenTooLarge) {
				status = http.StatusInternalServerError
				i.log.Error("cannot mint token", "err", err)
			}
			jsonError(w, status, err.Error())
			return
		}
		i.log.Info("token minted", "by", who, "remote", r.RemoteAddr, "type", req.Type, "token", shortHash(resp.Token), "expires_at", resp.ExpiresAt)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(resp)
	})
}

func (i *Issuer) mintRequest(req *TokenRequest) (*TokenResponse, error) {
	sub := req.Subject + req.Sub + req.ID // at most one is set
	if sub == "" {
		b := randomBytes(16)
		b[6] = b[6]&0x0f | 0x40
		b[8] = b[8]&0x3f | 0x80
		sub = fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
	}
	claims := map[string]any{}
	for k, v := range req.Claims {
		claims[k] = v
	}
	if req.Type != "" {
		claims["peer_type"] = req.Type
	}
	ttl := req.TTL.Duration + req.Lifetime.Duration // at most one is set
	tok, exp, err := i.Mint(sub, claims, ttl)
	if err != nil {
		return nil, err
	}
	typ := req.Type
	if typ == "" {
		typ = "client" // OPAL's default peer type
	}
	return &TokenResponse{Token: tok, Type: "bearer", ExpiresAt: exp.UTC(),
		Details: &TokenDetails{ID: sub, Type: typ, Expired: exp.UTC(), Claims: claims}}, nil
}

func jsonError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// ObtainToken asks the sks at serverURL for a token with the master token,
// as `sks obtain-token <master> --server-url=URL` (OPAL's obtain-token).
// serverURL is the base URL (".../token" is appended unless present).
// client may be nil (a client with a 30s timeout is used).
func ObtainToken(ctx context.Context, master, serverURL string, req TokenRequest, client *http.Client) (*TokenResponse, error) {
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	u := strings.TrimRight(serverURL, "/")
	if !strings.HasSuffix(u, "/token") {
		u += "/token"
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("cannot encode token request: %w", err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("cannot build token request: %w", err)
	}
	hr.Header.Set("Authorization", "Bearer "+master)
	hr.Header.Set("Content-Type", "application/json")
	res, err := client.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("cannot request token: %w", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("cannot read token response: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("token request refused: %s: %s", res.Status, e.Error)
		}
		return nil, fmt.Errorf("token request refused: %s", res.Status)
	}
	var tr TokenResponse
	if err := json.Unmarshal(b, &tr); err != nil || tr.Token == "" {
		return nil, fmt.Errorf("cannot decode token response: %v", err)
	}
	return &tr, nil
}

// OfflineToken signs a token for user with roles, and the claims
// [jwt.claims] maps them to, straight from the key in cfg, without a
// server (ClusterCockpit's `-jwt <user>`). ttl 0 means max_ttl; longer
// than max_ttl is refused.
func OfflineToken(cfg Config, user string, roles []string, ttl time.Duration) (string, time.Time, error) {
	cfg.MasterTokenFile, cfg.APIKeysFile = "", "" // not needed to sign
	i, err := Open(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return "", time.Time{}, err
	}
	if user == "" {
		return "", time.Time{}, errors.New("cannot issue offline token: user is empty")
	}
	if roles == nil {
		roles = []string{}
	}
	claims := i.claims.forSession("", roles)
	if claims == nil {
		claims = map[string]any{}
	}
	claims["roles"] = roles
	return i.Mint(user, claims, ttl)
}
