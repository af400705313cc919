package client_test

import (
	"fmt"
	"net/http"

	"github.com/sks-server/sks/client"
)

// Example is the README's import example: an application protects its
// handlers with the middleware. The import path above is the module path
// an application names in `go get`.
func Example() {
	c, err := client.New("https://sks.example.org:4431")
	if err != nil {
		fmt.Println(err)
		return
	}
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	http.Handle("/app/", client.Middleware(c, "rcloud", client.MiddlewareOptions{})(app))
	fmt.Println("protected")
	// Output: protected
}
