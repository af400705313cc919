module sks

go 1.26.0

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/pavlo-v-chernykh/keystore-go/v4 v4.5.0
	golang.org/x/crypto v0.58.0
	golang.org/x/term v0.47.0
	software.sslmate.com/src/go-pkcs12 v0.7.4
)

require golang.org/x/sys v0.49.0 // indirect
