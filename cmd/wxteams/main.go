// Command wxteams is the one wxteams binary: the server, the sandbox, and the operator tools.
// It is the only place that knows every package and wires them together.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

// command is one subcommand.
type command struct {
	name    string
	summary string
	usage   string // arguments after the command name
	run     func(ctx context.Context, env *environment, args []string) error
}

// environment is what commands get from the process, so tests can run them in-process.
type environment struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	// transport carries the calls to Microsoft (Entra, Bot Connector, Graph, OpenID metadata);
	// nil is http.DefaultTransport. Tests set one that trusts their fakes' certificate.
	transport http.RoundTripper
}

func commands() []*command {
	return []*command{
		{name: "serve", summary: "run wxteams against real Teams and WeChat (configuration from WXTEAMS_* variables)", run: runServe},
		{name: "sandbox", summary: "run wxteams on embedded SQLite with no configuration", run: runSandbox},
		{name: "admin", summary: "enable and disable WeChat for employees, list them, write their QR codes", run: runAdmin},
		{name: "keys", summary: "list, rotate and rewrap the data keys that encrypt message content", run: runKeys},
		{name: "rules", summary: "list, show, change, delete and try the firm's supervision rules", run: runRules},
		{name: "review", summary: "work the supervision review queue: list, show, assign, decide, sample, report", run: runReview},
		{name: "hold", summary: "place, lift and list legal holds", run: runHold},
		{name: "export", summary: "export the compliance record (JSONL, CSV, EML, Actiance XML) with a signed manifest", run: runExport},
		{name: "verify-export", summary: "check an export folder offline with the signing public key", run: runVerifyExport},
		{name: "export-job", summary: "schedule incremental exports (optionally mailed over SMTP)", run: runExportJobCmd},
		{name: "checkpoint", summary: "sign a checkpoint of the archive now", run: runCheckpoint},
		{name: "completeness", summary: "the daily completeness report: print, archive or verify one", run: runCompleteness},
		{name: "purge", summary: "remove records past the retention period that no hold covers", run: runPurge},
		{name: "loadtest", summary: "drive the public endpoints with many chats against the fakes; throughput, latency, pgbench ratio", run: runLoadtest},
		{name: "manifest", summary: "build the Teams app package (manifest and icons) for the app catalog", run: runManifest},
		{name: "migrate", summary: "bring the database schema up to date", run: runMigrate},
		{name: "verify", summary: "check the compliance archive's hash chains in the database", run: runVerify},
		{name: "version", summary: "print the version", run: runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, &environment{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}, os.Args[1:])
	stop()
	os.Exit(code)
}

// run executes a command line and returns the exit code: 0 success, 1 failure, 2 usage error.
func run(ctx context.Context, env *environment, args []string) int {
	cmds := commands()
	if len(args) == 0 {
		// No command: serve when a channel is configured (serve then validates it), the sandbox
		// only on its own database, else an error (bareCommand).
		name, err := bareCommand(env.getenv)
		if err != nil {
			fmt.Fprintf(env.stderr, "wxteams: %v\n", err)
			return 1
		}
		args = []string{name}
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		printUsage(env.stdout, cmds)
		return 0
	}
	for _, c := range cmds {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, env, args[1:])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			fmt.Fprintf(env.stderr, "wxteams %s: %v\n", c.name, err)
			return 2
		}
		fmt.Fprintf(env.stderr, "wxteams %s: %v\n", c.name, err)
		return 1
	}
	fmt.Fprintf(env.stderr, "wxteams: unknown command %q\n\n", args[0])
	printUsage(env.stderr, cmds)
	return 2
}

var errUsage = errors.New("usage")

func printUsage(w io.Writer, cmds []*command) {
	fmt.Fprint(w, `wxteams relays WeChat customers and Microsoft Teams employees through a governed bridge
and keeps a tamper-evident compliance record of every message.

Usage:
  wxteams [command] [flags]

With no command, wxteams runs "serve" when WXTEAMS_WECHAT_APPID or WXTEAMS_BOT_APP_ID is set, and
"sandbox" only when no deployment variable is set and WXTEAMS_DATABASE_URL is unset or the
sandbox's own (sqlite:wxteams-sandbox.db); otherwise it says which channel variables are missing.

Commands:
`)
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\nRun \"wxteams <command> --help\" for a command's flags. Configuration: see README.md.\n")
}

// flags returns a flag set for a command that prints its usage on --help.
func flags(env *environment, name, args, summary string) *flag.FlagSet {
	fs := flag.NewFlagSet("wxteams "+name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stdout, "Usage: wxteams %s %s\n\n%s\n", name, args, summary)
		var b strings.Builder
		fs.SetOutput(&b)
		fs.PrintDefaults()
		fs.SetOutput(env.stderr)
		if b.Len() > 0 {
			fmt.Fprintf(env.stdout, "\nFlags:\n%s", b.String())
		}
	}
	return fs
}

// parse parses a command's flags; --help returns flag.ErrHelp after printing usage.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}

func runVersion(ctx context.Context, env *environment, args []string) error {
	fs := flags(env, "version", "", "Print the wxteams version and the Go version it was built with.")
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "wxteams %s (%s %s/%s)\n", versionString(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

// versionString is the -ldflags version, else the module version or VCS revision, else "dev".
func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			return v
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return "dev"
}
