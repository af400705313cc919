package krb5

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jcmturner/gokrb5/v8/messages"

	"github.com/sks-server/sks/authn"
)

var _ authn.Checker = (*Kerberos)(nil)

// Check asks the realm's KDCs, in krb5.conf order over TCP, for a ticket
// for the service principal without pre-authentication and returns nil as
// soon as one answers with a Kerberos message (normally the error
// "pre-authentication required"). No password is sent and no failure is
// counted against any principal. A KDC that accepts the connection but does
// not answer (hung, frozen) fails by ctx's deadline or the module timeout.
func (k *Kerberos) Check(ctx context.Context) error {
	_, kdcs, err := k.krbCfg.GetKDCs(k.realm, true)
	if err != nil {
		return fmt.Errorf("kerberos: no kdc for realm %s: %w", k.realm, err)
	}
	req, err := messages.NewASReqForTGT(k.svcRealm, k.krbCfg, k.svcName)
	if err != nil {
		return fmt.Errorf("kerberos: cannot build probe request: %w", err)
	}
	b, err := req.Marshal()
	if err != nil {
		return fmt.Errorf("kerberos: cannot build probe request: %w", err)
	}
	var errs []string
	for i := 1; i <= len(kdcs); i++ {
		if err := k.ask(ctx, kdcs[i], b); err != nil {
			errs = append(errs, err.Error())
			if ctx.Err() != nil {
				break
			}
			continue
		}
		return nil
	}
	return fmt.Errorf("kerberos: no kdc of realm %s answered: %s: %w", k.realm, strings.Join(errs, "; "), authn.ErrUnavailable)
}

// ask sends one length-prefixed request to kdc and reads a Kerberos answer.
func (k *Kerberos) ask(ctx context.Context, kdc string, req []byte) error {
	dl := time.Now().Add(k.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	d := net.Dialer{Deadline: dl}
	c, err := d.DialContext(ctx, "tcp", kdc)
	if err != nil {
		return fmt.Errorf("%s: connect: %w", kdc, err)
	}
	defer c.Close()
	_ = c.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	msg := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(req)), uint32(len(req)))
	if _, err := c.Write(append(msg, req...)); err != nil {
		return fmt.Errorf("%s: send: %w", kdc, err)
	}
	var n [4]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return fmt.Errorf("%s: no answer: %w", kdc, err)
	}
	size := binary.BigEndian.Uint32(n[:])
	if size == 0 || size > 1<<20 {
		return fmt.Errorf("%s: answer of %d bytes is not a kerberos message", kdc, size)
	}
	ans := make([]byte, size)
	if _, err := io.ReadFull(c, ans); err != nil {
		return fmt.Errorf("%s: truncated answer: %w", kdc, err)
	}
	var ke messages.KRBError
	if ke.Unmarshal(ans) == nil {
		return nil
	}
	var rep messages.ASRep
	if rep.Unmarshal(ans) == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", kdc, errors.New("answer is not a kerberos message"))
}
