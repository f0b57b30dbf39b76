package main

import (
	"fmt"
	"net"
	"strconv"
)

// ports prints n distinct free ports on 127.0.0.1. All listeners stay open
// until every port is chosen, so the n ports differ; the window between
// closing them and Caddy binding them is the usual race of this technique.
func ports(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("want: ports N")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 1 || n > 100 {
		return fmt.Errorf("bad count %q", args[0])
	}
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		ls = append(ls, l)
	}
	for _, l := range ls {
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	return nil
}
