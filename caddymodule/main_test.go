package caddymodule

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/workspace-edge/caddy-workspace-profile/internal/pgtest"
)

// The integration tests run a real Caddy in this process through caddytest,
// on ports chosen free when the test binary starts, with Caddy's config and
// data directories in a temporary directory of this run: two runs at once
// both pass, and no run touches the user's Caddy directories.
var (
	itPort      int    // the test Caddy's HTTP port
	itAdminPort int    // its admin endpoint
	itHost      string // localhost:<itPort>, the test site's Host
	itAddr      string // 127.0.0.1:<itPort>, for raw sockets
	itSite      string // http://localhost:<itPort>, the test site's address
	itBase      string // the same, for URLs
	itAdmin     string // http://localhost:<itAdminPort>
	// itGlobal is the global options block of every test Caddyfile.
	itGlobal string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "caddymodule-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, v := range []string{"XDG_DATA_HOME", "XDG_CONFIG_HOME"} {
		_ = os.Setenv(v, dir)
	}
	// caddy computed these from the environment at init, before TestMain
	caddy.ConfigAutosavePath = filepath.Join(dir, "autosave.json")
	caddy.DefaultStorage.Path = filepath.Join(dir, "caddy")
	ports := freePorts(3)
	itPort, itAdminPort = ports[0], ports[1]
	itHost = "localhost:" + strconv.Itoa(itPort)
	itAddr = "127.0.0.1:" + strconv.Itoa(itPort)
	itSite = "http://" + itHost
	itBase = itSite
	itAdmin = "http://localhost:" + strconv.Itoa(itAdminPort)
	itGlobal = fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	https_port %d
	skip_install_trust
}
`, itAdminPort, itPort, ports[2])
	code := m.Run()
	pgtest.Stop()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// freePorts returns n distinct ports that were free a moment ago.
func freePorts(n int) []int {
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return ports
}

// newTester is caddytest.NewTester on this run's admin port.
func newTester(t testing.TB) *caddytest.Tester {
	return caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: itAdminPort})
}
