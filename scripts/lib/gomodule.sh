# Sourced by scripts: writes a small Go module (two packages, one test) to a directory.
make_go_module() {
    local dir="$1" name="${2:-example.com/hello}"
    mkdir -p "$dir/greet"
    cat >"$dir/go.mod" <<GOMOD
module $name

go 1.24
GOMOD
    cat >"$dir/main.go" <<'GO'
package main

import (
	"fmt"
	"os"
	"strings"

	"example.com/hello/greet"
)

func main() { fmt.Println(strings.ToUpper(greet.Hello(os.Args[0][:1]))) }
GO
    sed -i "s|example.com/hello/greet|$name/greet|" "$dir/main.go"
    cat >"$dir/greet/greet.go" <<'GO'
package greet

import "encoding/json"

// Hello returns a greeting, by way of encoding/json so the build has real work to do.
func Hello(name string) string {
	b, _ := json.Marshal(map[string]string{"hello": name})
	return string(b)
}
GO
    cat >"$dir/greet/greet_test.go" <<'GO'
package greet

import "testing"

func TestHello(t *testing.T) {
	if Hello("x") != `{"hello":"x"}` {
		t.Fatal(Hello("x"))
	}
}
GO
}
