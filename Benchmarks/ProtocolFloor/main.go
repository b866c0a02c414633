// Command protocolfloor is the least a GOCACHEPROG can do: one plain file per output, no
// compression, no checks, each request answered on the thread that read it. It is not part of
// chunkcache; scripts/bench-warm times warm builds through it to show what the protocol itself
// costs the go command on this machine, the floor under any cache program.
//
//	protocolfloor DIR
package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

type request struct {
	ID       int64
	Command  string
	ActionID []byte
	OutputID []byte
	BodySize int64
}

type response struct {
	ID            int64
	Err           string     `json:",omitempty"`
	KnownCommands []string   `json:",omitempty"`
	Miss          bool       `json:",omitempty"`
	OutputID      []byte     `json:",omitempty"`
	Size          int64      `json:",omitempty"`
	Time          *time.Time `json:",omitempty"`
	DiskPath      string     `json:",omitempty"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: protocolfloor DIR")
		os.Exit(2)
	}
	dir := os.Args[1]
	if err := os.MkdirAll(dir, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	send := func(r *response) {
		enc.Encode(r)
		out.Flush()
	}
	send(&response{KnownCommands: []string{"get", "put", "close"}})
	dec := json.NewDecoder(bufio.NewReaderSize(os.Stdin, 1<<20))
	for {
		var r request
		if err := dec.Decode(&r); err != nil {
			return
		}
		var body []byte
		if r.Command == "put" && r.BodySize > 0 {
			if err := dec.Decode(&body); err != nil {
				return
			}
		}
		action := filepath.Join(dir, hex.EncodeToString(r.ActionID)+"-a")
		switch r.Command {
		case "get":
			id, err := os.ReadFile(action)
			if err != nil {
				send(&response{ID: r.ID, Miss: true})
				continue
			}
			path := filepath.Join(dir, hex.EncodeToString(id)+"-d")
			info, err := os.Stat(path)
			if err != nil {
				send(&response{ID: r.ID, Miss: true})
				continue
			}
			t := info.ModTime()
			send(&response{ID: r.ID, OutputID: id, Size: info.Size(), Time: &t, DiskPath: path})
		case "put":
			path := filepath.Join(dir, hex.EncodeToString(r.OutputID)+"-d")
			err := writeAtomically(path, body)
			if err == nil {
				err = writeAtomically(action, r.OutputID)
			}
			if err != nil {
				send(&response{ID: r.ID, Err: err.Error()})
				continue
			}
			send(&response{ID: r.ID, DiskPath: path})
		case "close":
			send(&response{ID: r.ID})
			return
		default:
			send(&response{ID: r.ID, Err: "unknown command " + r.Command})
		}
	}
}

func writeAtomically(path string, data []byte) error {
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
