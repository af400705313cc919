package ldap

import (
	"context"

	"github.com/sks-server/sks/authn"
)

var _ authn.Checker = (*LDAP)(nil)

// Check dials the first directory that answers and binds as the service
// account (anonymously without bind_dn), on a connection of its own that it
// closes: a readiness probe neither uses nor disturbs the login pools.
func (l *LDAP) Check(ctx context.Context) error {
	c, err := l.d.dial(ctx)
	if err != nil {
		return err
	}
	c.close()
	return nil
}
