package sqlstoretest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// Cluster is a PostgreSQL server of the test's own — initdb in a temporary folder, on a free
// port — that the test may crash and restart without touching the shared one other packages'
// tests are using at the same time. It needs PostgreSQL's server programs (Debian's
// postgresql package); without them the test is skipped, except under CI.
type Cluster struct {
	t       testing.TB
	bin     string // the folder of pg_ctl and initdb
	dir     string
	port    string
	runAsPG bool // the programs refuse to run as root: run them as the postgres user
}

// NewCluster creates and starts a cluster, stopped and removed when the test ends.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(found) == 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("no PostgreSQL server programs (/usr/lib/postgresql/*/bin/pg_ctl): under CI this test must run")
		}
		t.Skip("no PostgreSQL server programs (/usr/lib/postgresql/*/bin/pg_ctl)")
	}
	slices.Sort(found)
	c := &Cluster{t: t, bin: filepath.Dir(found[len(found)-1]), runAsPG: os.Geteuid() == 0}
	dir, err := os.MkdirTemp("", "wxteams-pg")
	if err != nil {
		t.Fatal(err)
	}
	c.dir = dir
	t.Cleanup(func() {
		_ = c.run("pg_ctl", "-D", c.data(), "-m", "immediate", "stop")
		_ = os.RemoveAll(dir)
	})
	if c.runAsPG {
		pg, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, and no postgres user to run PostgreSQL as: %v", err)
		}
		uid, _ := strconv.Atoi(pg.Uid)
		gid, _ := strconv.Atoi(pg.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, c.port, _ = net.SplitHostPort(ln.Addr().String())
	ln.Close()
	if err := c.run("initdb", "-D", c.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		t.Fatal(err)
	}
	if err := c.run("pg_ctl", "-D", c.data(), "-o", c.options(), "-l", filepath.Join(dir, "log"), "-w", "start"); err != nil {
		t.Fatal(err)
	}
	return c
}

// URL is the cluster's postgres database.
func (c *Cluster) URL() string {
	return "postgres://postgres@127.0.0.1:" + c.port + "/postgres?sslmode=disable"
}

// Crash stops the server as a crash does (pg_ctl -m immediate: no checkpoint, recovery from the
// WAL at the next start), and Start brings it back.
func (c *Cluster) Crash() {
	c.t.Helper()
	if err := c.run("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "stop"); err != nil {
		c.t.Fatal(err)
	}
}

// Start starts the server again after Crash.
func (c *Cluster) Start() {
	c.t.Helper()
	if err := c.run("pg_ctl", "-D", c.data(), "-o", c.options(), "-l", filepath.Join(c.dir, "log"), "-w", "start"); err != nil {
		c.t.Fatal(err)
	}
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *Cluster) options() string {
	return "-p " + c.port + " -c listen_addresses=127.0.0.1 -k " + c.dir
}

func (c *Cluster) run(program string, args ...string) error {
	path := filepath.Join(c.bin, program)
	cmd := exec.Command(path, args...) // #nosec G204 -- a test helper running PostgreSQL's own programs
	if c.runAsPG {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...) // #nosec G204 -- a test helper running PostgreSQL's own programs
	}
	cmd.Dir = c.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v\n%s", program, err, out)
	}
	return nil
}
