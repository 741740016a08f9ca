package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/internal/loadtest"
)

const loadtestSummary = `Drive wxteams' public endpoints with the load of many chats and report throughput and latency.
wxteams runs in-process against the WeChat and Teams fakes (as in the sandbox): customers write
through signed, encrypted WeChat callbacks; employees write through Bot Framework activities with
real JWTs; wxteams archives, applies the policy and delivers to the other side's fake. Each chat
repeats a round — the customer writes, the employee answers one to four times (the fourth is
queued by the cap of three and flushed by the customer's next message); after one round in eight
the customer goes quiet for longer than the window (--window, the run's stand-in for 48 h; by
default four times a chat's round interval), so that the 24 h notice and the inactivity fire and
the next message wakes the chat. Every message is followed until it arrives. On PostgreSQL it
then runs pgbench with the SQL one message costs, on the same database for the same time and
clients, and prints the ratio.

With --faults, WeChat and Teams misbehave throughout (errors, slow answers, resets, throttling,
invalidated tokens, callbacks pushed three times) and afterwards the archive is held against what
arrived: each message archived once and arrived (or archived as outcome unknown, its employee
told), none twice or out of order, no customer over the cap, the chains verified.

Use a scratch database: the load adds its employees, customers and pgbench's fixture to it. Like
the sandbox, it runs only on a new, empty database or one the sandbox or a load run used before.`

func runLoadtest(ctx context.Context, env *environment, args []string) error {
	fs := flags(env, "loadtest", "[flags]", loadtestSummary)
	dbURL := fs.String("database-url", "", "the database to load (default: a new SQLite file in a temporary folder)")
	chats := fs.Int("chats", 32, "chats written concurrently (one employee and one customer each)")
	duration := fs.Duration("duration", 20*time.Second, "how long to load")
	rate := fs.Float64("rate", 0, "target rounds per second across all chats (0: as fast as they go)")
	pgbench := fs.Bool("pgbench", true, "on PostgreSQL, run pgbench with the same SQL afterwards and print the ratio")
	window := fs.Duration("window", 0, "the firm's window for this run, the 24 h notice at half of it, so that quiet customers' timers fire (default: four times a chat's round interval --chats/--rate, at least 6s; 48h for the policy's own)")
	faults := fs.Bool("faults", false, "inject WeChat and Teams faults throughout (see internal/loadtest/faults.go) and check the archive afterwards")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run (wxteams and the fakes) to this file")
	blockProfile := fs.String("blockprofile", "", "write a profile of where goroutines waited (locks, channels, I/O) to this file")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *blockProfile != "" {
		runtime.SetBlockProfileRate(int(100 * time.Microsecond))
		runtime.SetMutexProfileFraction(10)
		defer func() {
			if f, err := os.Create(*blockProfile); err == nil {
				_ = pprof.Lookup("block").WriteTo(f, 0)
				f.Close()
			}
		}()
	}
	if *chats < 1 || *duration < time.Second || (*window != 0 && *window < time.Second) {
		return fmt.Errorf("%w: --chats must be at least 1, --duration and --window at least 1s", errUsage)
	}
	if *window == 0 {
		// Long enough that a chat's normal rounds keep it open, short enough that quiet ones lapse.
		*window = 6 * time.Second
		if *rate > 0 {
			*window = max(*window, time.Duration(4*float64(*chats) / *rate * float64(time.Second)).Round(time.Second))
		}
	}
	tmp, err := os.MkdirTemp("", "wxteams-loadtest")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	db := *dbURL
	if db == "" {
		db = "sqlite:" + filepath.Join(tmp, "load.db")
	}
	res, _, err := runLoad(ctx, env, loadOptions{db: db, keysDir: tmp, load: loadtest.Options{Chats: *chats, Duration: *duration, Rate: *rate,
		Pgbench: *pgbench, Window: *window, Faults: *faults}})
	if err != nil {
		return err
	}
	res.Print(env.stdout)
	if res.Lost > 0 {
		return fmt.Errorf("%d messages were acknowledged but never arrived", res.Lost)
	}
	if len(res.Problems) > 0 {
		return fmt.Errorf("%d problems found (see above)", len(res.Problems))
	}
	return nil
}

// loadOptions are how runLoad starts wxteams and the fakes for a load, and the load's own options.
type loadOptions struct {
	db      string
	keysDir string // the run's keys and exports go here
	// logs receives wxteams' log (default: discarded); the security test reads it.
	logs io.Writer
	// logLevel is wxteams' log level [warn].
	logLevel string
	load     loadtest.Options
}

// runLoad starts wxteams against the sandbox's fakes and runs the load. It also returns the run's
// credentials and keys, for the test that none reaches the log.
func runLoad(ctx context.Context, env *environment, lc loadOptions) (*loadtest.Result, []string, error) {
	logs := lc.logs
	if logs == nil {
		logs = io.Discard
	}
	level := lc.logLevel
	if level == "" {
		level = "warn"
	}
	loadEnv := &environment{stdout: io.Discard, stderr: logs, getenv: overlay(env.getenv, map[string]string{
		"WXTEAMS_INTERNAL_LISTEN": "127.0.0.1:0", "WXTEAMS_LOG_LEVEL": level, "WXTEAMS_LOG_FORMAT": "json",
		// The fake tenant is the only one; let the bot send as fast as wxteams can.
		"WXTEAMS_BOT_TENANT_RPS": "10000",
		// Nothing in the working folder: exports and keys go to the run's own folder.
		"WXTEAMS_EXPORT_DIR": filepath.Join(lc.keysDir, "exports"),
	})}
	world, cfg, sandboxEnv, err := prepareSandbox(ctx, loadEnv, "127.0.0.1:0", lc.db, "json", filepath.Join(lc.keysDir, "sandbox.keys.json"))
	if err != nil {
		return nil, nil, err
	}
	defer world.stop()
	var secrets []string
	for _, k := range []string{"WXTEAMS_WECHAT_SECRET", "WXTEAMS_WECHAT_TOKEN", "WXTEAMS_WECHAT_AES_KEY", "WXTEAMS_BOT_CLIENT_SECRET"} {
		secrets = append(secrets, world.env[k])
	}
	// Before serve takes the keys out of cfg (loadCustody).
	secrets = append(secrets, base64.StdEncoding.EncodeToString(cfg.ArchiveKey), base64.StdEncoding.EncodeToString(cfg.SigningKey))
	serveCtx, stop := context.WithCancel(ctx)
	defer stop()
	started := make(chan *server, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(serveCtx, sandboxEnv, cfg, serveOptions{clock: world.clock, sandbox: world, started: started})
	}()
	var s *server
	select {
	case s = <-started:
	case err := <-done:
		return nil, nil, fmt.Errorf("wxteams did not start: %w", err)
	case <-time.After(60 * time.Second):
		return nil, nil, errors.New("wxteams did not start within a minute")
	}
	defer func() { stop(); <-done }()

	res, err := loadtest.Run(ctx, &loadtest.World{
		WeChat: world.wechat,
		Teams:  world.teams,
		Tenant: sandboxTenant,
		Enable: func(ctx context.Context, p bridge.EmployeeProfile) error {
			if res, err := world.admin.Enable(ctx, p, "admin:loadtest"); err != nil || !res.Installed {
				return fmt.Errorf("%v %s", err, res.InstallError)
			}
			return nil
		},
		Engine:      s.engine,
		Store:       s.store,
		DatabaseURL: lc.db,
	}, lc.load)
	return res, secrets, err
}
