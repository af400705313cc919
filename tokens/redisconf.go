package tokens

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sks-server/sks/secretfile"
)

// Redis deployment modes of RedisOptions.Mode.
const (
	RedisSingle   = "single"
	RedisSentinel = "sentinel"
	RedisCluster  = "cluster"
)

// DefaultRedisTimeout bounds each store call when RedisOptions.Timeout is zero.
const DefaultRedisTimeout = 2 * time.Second

// DefaultRedisKeyPrefix starts every key sks writes when KeyPrefix is empty.
const DefaultRedisKeyPrefix = "sks:"

// RedisOptions configures OpenRedis. The zero value plus Addrs is a plain
// single server on database 0 without TLS or password.
type RedisOptions struct {
	// Addrs are host:port pairs: the server (single), the sentinels
	// (sentinel) or some cluster nodes to discover the others from (cluster).
	Addrs []string `toml:"addrs"`
	// Mode is "single" (default), "sentinel" or "cluster".
	Mode string `toml:"mode"`
	// MasterName is the name the sentinels monitor; required in sentinel mode.
	MasterName string `toml:"master_name"`
	// SentinelUsername and SentinelPassword authenticate to the sentinels
	// themselves, if they require it (sentinel mode only).
	SentinelUsername string `toml:"sentinel_username"`
	SentinelPassword string `toml:"sentinel_password"`
	// Username is the ACL user (Redis 6+); empty means "default".
	Username string `toml:"username"`
	// Password authenticates to Redis (requirepass or the ACL user's password).
	Password string `toml:"password"`
	// PasswordFile holds the password instead of the config file. It must
	// not be readable by group or others. A trailing newline is ignored.
	PasswordFile string `toml:"password_file"`
	// DB is the database number; must be 0 in cluster mode.
	DB int `toml:"db"`
	// TLS connects with TLS. CAFile, CertFile and KeyFile imply it.
	TLS bool `toml:"tls"`
	// CAFile is a PEM bundle of CAs to trust instead of the system pool.
	CAFile string `toml:"ca_file"`
	// CertFile and KeyFile are a client certificate for mutual TLS.
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	// ServerName overrides the name checked in the server's certificate;
	// empty means the host of each address.
	ServerName string `toml:"server_name"`
	// Timeout bounds every store call (dial, retries and reply together),
	// on top of the caller's context. Default DefaultRedisTimeout.
	Timeout time.Duration `toml:"timeout"`
	// KeyPrefix starts every key, so that several sks installations (or
	// tests) can share one Redis. Default "sks:". It must not contain '{'
	// or '}', which would change the cluster hash slot of keys.
	KeyPrefix string `toml:"key_prefix"`
	// CacheSize is how many token records each node keeps in memory for
	// /valid, kept exact by Redis's invalidation messages (see the README,
	// "Client-side cache"). 0 means DefaultRedisCacheSize; negative turns
	// the cache off. Not available in cluster mode.
	CacheSize int `toml:"cache_size"`
	// CacheStaleness bounds how long after a write acknowledged to any
	// node this node may still answer from its cache: normally invalidation
	// takes well under a millisecond, this is the limit when the tracking
	// connection stalls. Default DefaultRedisCacheStaleness.
	CacheStaleness time.Duration `toml:"cache_staleness"`
}

// withDefaults checks o and fills its defaults, reading PasswordFile.
func (o RedisOptions) withDefaults() (RedisOptions, error) {
	if o.Mode == "" {
		o.Mode = RedisSingle
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = DefaultRedisKeyPrefix
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultRedisTimeout
	}
	if o.CacheSize == 0 {
		o.CacheSize = DefaultRedisCacheSize
	}
	if o.CacheStaleness < 0 {
		return o, fmt.Errorf("redis: cache_staleness %s is negative", o.CacheStaleness)
	}
	if o.CacheStaleness == 0 {
		o.CacheStaleness = DefaultRedisCacheStaleness
	}
	if len(o.Addrs) == 0 {
		return o, errors.New("redis: no addrs configured")
	}
	for _, a := range o.Addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return o, fmt.Errorf("redis: addr %q is not host:port: %w", a, err)
		}
	}
	switch o.Mode {
	case RedisSingle:
		if len(o.Addrs) != 1 {
			return o, fmt.Errorf("redis: mode single takes one addr, got %d (use mode sentinel or cluster for several)", len(o.Addrs))
		}
	case RedisSentinel:
		if o.MasterName == "" {
			return o, errors.New("redis: mode sentinel needs master_name")
		}
	case RedisCluster:
		if o.DB != 0 {
			return o, errors.New("redis: mode cluster has only db 0")
		}
	default:
		return o, fmt.Errorf("redis: unknown mode %q (want single, sentinel or cluster)", o.Mode)
	}
	if o.DB < 0 {
		return o, fmt.Errorf("redis: db %d is negative", o.DB)
	}
	if strings.ContainsAny(o.KeyPrefix, "{}") {
		return o, fmt.Errorf("redis: key_prefix %q must not contain { or }", o.KeyPrefix)
	}
	if o.PasswordFile != "" {
		if o.Password != "" {
			return o, errors.New("redis: set password or password_file, not both")
		}
		pw, err := readPasswordFile(o.PasswordFile)
		if err != nil {
			return o, fmt.Errorf("redis: %w", err)
		}
		o.Password = pw
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return o, errors.New("redis: cert_file and key_file go together")
	}
	if o.CAFile != "" || o.CertFile != "" {
		o.TLS = true
	}
	return o, nil
}

// readPasswordFile reads password_file, refusing a file that group or
// others can read: a password in a world-readable file is no secret. Only
// trailing line endings are dropped.
func readPasswordFile(path string) (string, error) {
	b, err := secretfile.ReadOf("password_file", path)
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("password_file %s is empty", path)
	}
	return s, nil
}

// tlsConfig builds the client TLS configuration once, at open.
func (o RedisOptions) tlsConfig() (*tls.Config, error) {
	if !o.TLS {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("redis: cannot read ca_file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis: ca_file %s holds no PEM certificate", o.CAFile)
		}
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("redis: cannot load cert_file/key_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// ParseRedisURL parses redis://[user:password@]host:port[/db] or rediss://
// (TLS) into options. Query parameters set the other fields: addr (more
// addresses, repeatable), mode, master_name, key_prefix, timeout (a Go
// duration), ca_file, cert_file, key_file, password_file, server_name,
// cache_size, cache_staleness.
// The port defaults to 6379.
func ParseRedisURL(s string) (RedisOptions, error) {
	var o RedisOptions
	u, err := url.Parse(s)
	if err != nil {
		// url.Parse quotes the whole URL, password included: say less.
		return o, errors.New("redis: cannot parse url (want redis://[user:password@]host:port/db)")
	}
	switch u.Scheme {
	case "redis":
	case "rediss":
		o.TLS = true
	default:
		return o, fmt.Errorf("redis: url scheme %q is not redis or rediss", u.Scheme)
	}
	if u.User != nil {
		o.Username = u.User.Username()
		o.Password, _ = u.User.Password()
	}
	if u.Host != "" {
		host, port := u.Hostname(), u.Port()
		if port == "" {
			port = "6379"
		}
		o.Addrs = append(o.Addrs, net.JoinHostPort(host, port))
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		db, err := strconv.Atoi(p)
		if err != nil {
			return o, fmt.Errorf("redis: url path %q is not a database number", u.Path)
		}
		o.DB = db
	}
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "addr":
			o.Addrs = append(o.Addrs, vs...)
		case "mode":
			o.Mode = v
		case "master_name":
			o.MasterName = v
		case "key_prefix":
			o.KeyPrefix = v
		case "timeout":
			d, err := time.ParseDuration(v)
			if err != nil {
				return o, fmt.Errorf("redis: url timeout: %w", err)
			}
			o.Timeout = d
		case "ca_file":
			o.CAFile = v
		case "cert_file":
			o.CertFile = v
		case "key_file":
			o.KeyFile = v
		case "password_file":
			o.PasswordFile = v
		case "server_name":
			o.ServerName = v
		case "cache_size":
			n, err := strconv.Atoi(v)
			if err != nil {
				return o, fmt.Errorf("redis: url cache_size %q is not a number", v)
			}
			o.CacheSize = n
		case "cache_staleness":
			d, err := time.ParseDuration(v)
			if err != nil {
				return o, fmt.Errorf("redis: url cache_staleness: %w", err)
			}
			o.CacheStaleness = d
		default:
			return o, fmt.Errorf("redis: unknown url parameter %q", k)
		}
	}
	if len(o.Addrs) == 0 {
		return o, errors.New("redis: url has no host")
	}
	return o, nil
}
