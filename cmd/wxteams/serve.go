package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wxteams/wxteams/bot"
	"github.com/wxteams/wxteams/bridge"
	"github.com/wxteams/wxteams/bridge/clock"
	"github.com/wxteams/wxteams/bridge/intake"
	"github.com/wxteams/wxteams/bridge/sqlstore"
	"github.com/wxteams/wxteams/bridge/wechat"
	"github.com/wxteams/wxteams/compliance/api"
	"github.com/wxteams/wxteams/compliance/export"
	"github.com/wxteams/wxteams/compliance/supervision"
	"github.com/wxteams/wxteams/console"
)

const serveSummary = `Run wxteams: the public listener (WXTEAMS_LISTEN) serves the Teams and WeChat endpoints,
/healthz and /readyz; the internal listener (WXTEAMS_INTERNAL_LISTEN) serves /metrics and
/debug/pprof/ and must not be reachable from outside. Configuration comes from WXTEAMS_*
environment variables (see README.md); flags override them. serve refuses keys that are not random
or are the sandbox's and a WeChat Token under 16 characters; it refuses plaintext callbacks,
cleartext transport beyond loopback and an internal listener beyond loopback unless their
WXTEAMS_INSECURE_* opt-in allows them (logged at start); it never runs on the sandbox's database.`

func runServe(ctx context.Context, env *environment, args []string) error {
	fs := flags(env, "serve", "[flags]", serveSummary)
	listen := fs.String("listen", "", "public listen address (default WXTEAMS_LISTEN or :8080)")
	internal := fs.String("internal-listen", "", "internal listen address for /metrics and pprof (default WXTEAMS_INTERNAL_LISTEN or 127.0.0.1:9090)")
	dbURL := fs.String("database-url", "", "sqlite:PATH or postgres://… (default WXTEAMS_DATABASE_URL or sqlite:wxteams.db)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(overlay(env.getenv, map[string]string{
		"WXTEAMS_LISTEN": *listen, "WXTEAMS_INTERNAL_LISTEN": *internal, "WXTEAMS_DATABASE_URL": *dbURL,
	}))
	if err != nil {
		return err
	}
	if !cfg.Configured() {
		return errors.New("nothing is configured to serve: set the WeChat (WXTEAMS_WECHAT_*) and Teams (WXTEAMS_BOT_*) variables described in README.md, or run `wxteams sandbox` to try wxteams without them")
	}
	if cfg.ArchiveKey == nil || cfg.SigningKey == nil {
		return errNoArchiveKeys
	}
	warnings, err := serveSafety(cfg)
	if err != nil {
		return err
	}
	if err := hardenProcess(); err != nil {
		warnings = append(warnings, err.Error())
	}
	return serve(ctx, env, cfg, serveOptions{clock: clock.System{}, warnings: warnings})
}

const sandboxSummary = `Run wxteams with no configuration: the real product on embedded SQLite (sqlite:wxteams-sandbox.db
unless --database-url or WXTEAMS_DATABASE_URL says otherwise) against in-process fakes of WeChat
and Microsoft Teams, with the console at http://localhost:8080 — a Teams pane, a WeChat phone, the
live archive and a clock to jump 24 h and 48 h. Every message goes through the real endpoints,
signed, encrypted and archived. The sandbox has no sign-in: it listens on loopback only, answers
only requests addressed to localhost, and runs only on a new, empty database or one it created.
Its keys are in a .keys.json file beside its database (mode 0600); serve refuses them.`

func runSandbox(ctx context.Context, env *environment, args []string) error {
	fs := flags(env, "sandbox", "[flags]", sandboxSummary)
	listen := fs.String("listen", "", "loopback listen address (default WXTEAMS_LISTEN or 127.0.0.1:8080)")
	dbURL := fs.String("database-url", "", "a new database, or one the sandbox created (default WXTEAMS_DATABASE_URL or "+sandboxDatabaseURL+")")
	if err := parse(fs, args); err != nil {
		return err
	}
	db := *dbURL
	if db == "" {
		db = strings.TrimSpace(env.getenv("WXTEAMS_DATABASE_URL"))
	}
	if db == "" {
		db = sandboxDatabaseURL
	}
	format := ""
	if env.getenv("WXTEAMS_LOG_FORMAT") == "" {
		format = "console"
	}
	addr := *listen
	if addr == "" && env.getenv("WXTEAMS_LISTEN") == "" {
		addr = "127.0.0.1:8080"
	}
	world, cfg, sandboxEnv, err := prepareSandbox(ctx, env, addr, db, format, sandboxKeysPath(db))
	if err != nil {
		return err
	}
	defer world.stop()
	return serve(ctx, sandboxEnv, cfg, serveOptions{clock: world.clock, sandbox: world})
}

// prepareSandbox starts the fakes and configures wxteams for them, on loopback listeners, with the
// database claimed for the sandbox and the sandbox's keys from keysPath (never the environment's).
func prepareSandbox(ctx context.Context, env *environment, addr, db, logFormat, keysPath string) (*sandboxWorld, *Config, *environment, error) {
	world, err := startSandboxWorld(&clock.Offset{})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("sandbox: %w", err)
	}
	over := map[string]string{"WXTEAMS_LISTEN": addr, "WXTEAMS_DATABASE_URL": db, "WXTEAMS_LOG_FORMAT": logFormat}
	for k, v := range world.env {
		over[k] = v // the fakes, whatever the environment says
	}
	cfg, err := loadConfig(overlay(env.getenv, over))
	if err == nil {
		err = checkSandboxListeners(cfg)
	}
	if err == nil {
		err = claimSandboxDatabase(ctx, cfg.DatabaseURL)
	}
	if err == nil {
		cfg.ArchiveKeyPrevious = nil
		cfg.ArchiveKey, cfg.SigningKey, err = sandboxKeys(keysPath)
	}
	if err != nil {
		world.stop()
		return nil, nil, nil, err
	}
	sandboxEnv := *env
	sandboxEnv.transport = world.transport
	sandboxEnv.getenv = overlay(env.getenv, over)
	return world, cfg, &sandboxEnv, nil
}

// claimSandboxDatabase lets the sandbox use the database only if it is new or the sandbox's own.
func claimSandboxDatabase(ctx context.Context, dbURL string) error {
	store, err := sqlstore.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.ClaimSandbox(ctx, time.Now()); err != nil {
		if errors.Is(err, sqlstore.ErrNotSandbox) {
			return fmt.Errorf("%s: %w; give the sandbox a new database, e.g. --database-url %s", redact(dbURL), err, sandboxDatabaseURL)
		}
		return err
	}
	return nil
}

// overlay returns getenv with non-empty overrides on top.
func overlay(getenv func(string) string, over map[string]string) func(string) string {
	return func(k string) string {
		if v := over[k]; v != "" {
			return v
		}
		return getenv(k)
	}
}

// newLogger builds the process logger. Message bodies, tokens and keys are never logged anywhere.
func newLogger(cfg *Config, env *environment) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(cfg.LogLevel)
	if err != nil {
		return nil, err
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	enc := zapcore.NewJSONEncoder(encCfg)
	if cfg.LogFormat == "console" {
		encCfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	}
	// Locked: the log is written from many goroutines, and the writer may be any io.Writer (a buffer in tests).
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(env.stderr)), level)), nil
}

// server is a running wxteams: listeners, store and engine.
type server struct {
	cfg    *Config
	log    *zap.Logger
	store  *sqlstore.Store
	engine *bridge.Engine
	wechat *wechat.Client // nil when WeChat is not configured
	// wechatCallback is the endpoint WeChat pushes to (nil when WeChat is not configured).
	wechatCallback *wechat.Callback
	public         *http.Server
	internal       *http.Server
	registry       *prometheus.Registry // the internal listener's metrics
	clock          bridge.Clock
	// ready is closed once both listeners accept connections; publicAddr and internalAddr are set then.
	ready                    chan struct{}
	publicAddr, internalAddr string
}

// serveOptions are how serve runs beyond its configuration.
type serveOptions struct {
	clock bridge.Clock
	// started, if not nil, receives the server once it listens (tests use it).
	started chan<- *server
	// sandbox is the fake world the sandbox runs against; nil for real Teams and WeChat.
	sandbox *sandboxWorld
	// warnings are logged at start: the WXTEAMS_INSECURE_* opt-ins in use and the like (serveSafety).
	warnings []string
}

// serve runs wxteams until ctx is cancelled, then drains: it stops accepting requests, lets
// requests and deliveries in flight finish (up to WXTEAMS_SHUTDOWN_GRACE), and closes the store.
func serve(ctx context.Context, env *environment, cfg *Config, opts serveOptions) error {
	clk := opts.clock
	log, err := newLogger(cfg, env)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	for _, w := range opts.warnings {
		log.Warn("start-up check: " + w)
	}

	keys, err := loadCustody(cfg)
	if err != nil {
		return err
	}
	store, err := sqlstore.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer store.Close()
	store.SetConnections(cfg.DBConnections)
	store.UseKeyring(keys.ring)
	if opts.sandbox == nil {
		if sandboxDB, err := store.IsSandbox(ctx); err != nil {
			return err
		} else if sandboxDB {
			return errSandboxDatabase
		}
	} else if err := checkSandboxListeners(cfg); err != nil {
		return err
	}
	if cfg.AutoMigrate {
		applied, err := store.Migrate(ctx)
		if err != nil {
			return err
		}
		if len(applied) > 0 {
			log.Info("database migrated", zap.Int64s("versions", applied))
		}
	} else if err := store.CheckSchema(ctx); err != nil {
		return err
	}

	registry := prometheus.NewRegistry()
	engineCfg := bridge.Config{Store: store, Clock: clk, Logger: log.Named("bridge"), Policy: cfg.Policy, Observer: newEngineMetrics(registry)}
	var wx *wechat.Client
	if cfg.WeChat.AppID != "" {
		if wx, err = newWeChatClient(cfg, store, clk, log.Named("wechat")); err != nil {
			return err
		}
		engineCfg.WeChat = wx
		engineCfg.Media = map[string]bridge.MediaFetcher{"wechat": wx}
	}
	var teams *teamsChannel
	if cfg.Bot.AppID != "" {
		if teams, err = newTeamsChannel(cfg, env.getenv, env.transport, store, clk); err != nil {
			return err
		}
		engineCfg.Teams = teams.sender
		if engineCfg.Media == nil {
			engineCfg.Media = map[string]bridge.MediaFetcher{}
		}
		engineCfg.Media["teams"] = teams.sender
	}
	engine, err := bridge.NewEngine(engineCfg)
	if err != nil {
		return err
	}
	if err := engine.LoadRules(ctx, store); err != nil {
		return fmt.Errorf("%w (list them with `wxteams rules list`; fix or delete the rule named)", err)
	}
	s := &server{cfg: cfg, log: log, store: store, engine: engine, wechat: wx, ready: make(chan struct{}), registry: registry, clock: clk}
	watcher := intake.New(intake.Config{Store: store, Clock: clk, Log: log.Named("intake"), StallAfter: cfg.StallAfter})
	receipts := newReceipts(registry, watcher)
	if wx != nil {
		if s.wechatCallback, err = newWeChatCallback(cfg, engine, receipts, clk, log.Named("wechat")); err != nil {
			return err
		}
	}
	routes := s.publicRoutes()
	var sandboxAdmin *bot.Admin
	var officers *api.API
	if teams != nil {
		var qr bot.QRSource
		if wx != nil {
			qr = wx
		}
		officials, err := teams.officials(clk, log.Named("auth"))
		if err != nil {
			return err
		}
		teams.receipts = receipts
		if err := teams.routes(routes, engine, qr, officials, clk, log.Named("teams")); err != nil {
			return err
		}
		officers, err = api.New(api.Config{Auth: officials, Archive: store, People: store, ExportDir: cfg.ExportDir, PublicKey: keys.public(), Clock: clk,
			Rules: store, Supervisor: engineRules{engine, store}, Reviews: store,
			Log: log.Named("compliance"), Export: func(ctx context.Context, dir string, scope export.Scope, actor string) (*export.Manifest, error) {
				return exportAndArchive(ctx, store, keys, dir, scope, actor, clk.Now())
			}, Completeness: completenessSource(store, keys, cfg, clk)})
		if err != nil {
			return err
		}
		officers.Routes(routes)
		if opts.sandbox != nil {
			con, err := console.New(console.Config{API: routes, Sandbox: opts.sandbox, Log: log.Named("console"),
				Policy: func() any { return engine.Policy() }})
			if err != nil {
				return err
			}
			con.Routes(routes)
			sandboxAdmin = teams.admin(nil, engine, qr, log.Named("admin"))
		} else {
			auth, err := newConsoleAuth(cfg, keys.cookie, env.getenv, env.transport, clk, log.Named("console"))
			if err != nil {
				return fmt.Errorf("console sign-in: %w", err)
			}
			if auth != nil {
				con, err := console.New(console.Config{API: routes, Auth: auth, Log: log.Named("console"), Policy: func() any { return engine.Policy() }})
				if err != nil {
					return err
				}
				con.Routes(routes)
			}
		}
	}
	public, internal := accessLog(log.Named("http"), routes), s.internalRoutes()
	if opts.sandbox != nil {
		public, internal = loopbackHostOnly(public), loopbackHostOnly(internal)
	}
	s.public = newHTTPServer(public, log)
	s.internal = newHTTPServer(internal, log)

	pubLn, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("public listener %s: %w", cfg.Listen, err)
	}
	intLn, err := net.Listen("tcp", cfg.InternalListen)
	if err != nil {
		pubLn.Close()
		return fmt.Errorf("internal listener %s: %w", cfg.InternalListen, err)
	}
	s.publicAddr, s.internalAddr = pubLn.Addr().String(), intLn.Addr().String()

	errc := make(chan error, 2)
	go func() { errc <- ignoreClosed(s.public.Serve(pubLn)) }()
	go func() { errc <- ignoreClosed(s.internal.Serve(intLn)) }()
	engineCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	engineDone := make(chan error, 1)
	go func() { engineDone <- engine.Run(engineCtx) }()
	// The background jobs end with the engine; serve waits for them, so nothing of this process
	// logs or touches the store after serve returns.
	var jobs sync.WaitGroup
	jobs.Go(func() { runCustodyJobs(engineCtx, store, keys, engine.Policy, cfg, clk, log.Named("custody")) })
	jobs.Go(func() { engine.WatchRules(engineCtx, store, rulesWatchEvery) })
	jobs.Go(func() { runCompletenessJob(engineCtx, store, keys, cfg, clk, log.Named("completeness")) })
	jobs.Go(func() { watcher.Run(engineCtx) })
	jobs.Go(func() { runSampler(engineCtx, store, clk, log.Named("sample")) })

	log.Info("wxteams listening",
		zap.String("version", versionString()),
		zap.String("public", "http://"+s.publicAddr),
		zap.String("internal", "http://"+s.internalAddr),
		zap.String("database", string(store.Dialect())),
		zap.Bool("wechat", wx != nil),
		zap.Bool("teams", teams != nil),
		zap.Bool("encrypted", keys.ring != nil),
		zap.Bool("signed_checkpoints", keys.sign != nil))
	if opts.sandbox != nil {
		if err := opts.sandbox.attach(ctx, s, sandboxAdmin, log.Named("sandbox")); err != nil {
			log.Error("sandbox setup failed", zap.Error(err))
		}
		fmt.Fprintf(env.stdout, "\nwxteams sandbox: open http://%s in your browser\n\n", browserAddr(s.publicAddr))
	}
	close(s.ready)
	if opts.started != nil {
		opts.started <- s
	}

	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down: draining requests and deliveries", zap.Stringer("grace", cfg.ShutdownGrace))
	case serveErr = <-errc:
		log.Error("listener failed", zap.Error(serveErr))
	}
	graceCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	if err := s.public.Shutdown(graceCtx); err != nil {
		log.Warn("public listener did not drain in time", zap.Error(err))
	}
	if officers != nil {
		officers.Close() // the refused calls not archived one by one yet
	}
	stopEngine()
	select {
	case <-engineDone:
	case <-graceCtx.Done():
		log.Warn("deliveries still in flight at the end of the grace period; their claims will run out and be resolved by the next process")
	}
	jobsDone := make(chan struct{})
	go func() { jobs.Wait(); close(jobsDone) }()
	select {
	case <-jobsDone:
	case <-graceCtx.Done():
		log.Warn("background jobs (custody, completeness, sampling) still running at the end of the grace period")
	}
	if err := s.internal.Shutdown(graceCtx); err != nil {
		log.Warn("internal listener did not drain in time", zap.Error(err))
	}
	log.Info("stopped")
	return serveErr
}

// browserAddr is a listen address as a person types it: localhost for loopback and unspecified.
func browserAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip == nil || ip.IsLoopback() || ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func newHTTPServer(h http.Handler, log *zap.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
}

// publicRoutes is what the public listener serves besides the Teams routes (teamsChannel.routes).
// Metrics, pprof and debug endpoints are never registered here.
func (s *server) publicRoutes() *mux.Router {
	r := mux.NewRouter()
	r.HandleFunc("/healthz", s.healthz).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/readyz", s.readyz).Methods(http.MethodGet, http.MethodHead)
	if s.wechatCallback != nil {
		r.Handle("/wechat/callback", s.wechatCallback).Methods(http.MethodGet, http.MethodPost)
	}
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not found", http.StatusNotFound)
	})
	return r
}

// internalRoutes is the operators' listener: Prometheus metrics and pprof.
func (s *server) internalRoutes() http.Handler {
	reg := s.registry
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newStoreCollector(s.store, func() time.Duration { return time.Duration(s.engine.Policy().Window) }, s.clock),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wxteams_build_info", Help: "Always 1; the version is a label.", ConstLabels: prometheus.Labels{"version": versionString()},
		}, func() float64 { return 1 }),
	)
	r := mux.NewRouter()
	r.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	r.HandleFunc("/debug/pprof/", pprof.Index)
	r.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	r.HandleFunc("/debug/pprof/profile", pprof.Profile)
	r.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	r.HandleFunc("/debug/pprof/trace", pprof.Trace)
	r.PathPrefix("/debug/pprof/").HandlerFunc(pprof.Index)
	return r
}

// healthz says the process is alive.
func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

// readyz says whether this replica can take traffic: the database answers and its schema is the
// one this build expects.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{"database": "ok"}
	status := http.StatusOK
	if err := s.store.Ping(ctx); err != nil {
		checks["database"], status = "unreachable", http.StatusServiceUnavailable
		s.log.Warn("readiness: database unreachable", zap.Error(err))
	} else if err := s.store.CheckSchema(ctx); err != nil {
		checks["database"], status = "schema mismatch", http.StatusServiceUnavailable
		s.log.Warn("readiness: schema", zap.Error(err))
	}
	if s.wechat != nil {
		// Only a configuration error makes the replica unready: while WeChat's API is merely down,
		// pushes are still received and archived, and deliveries wait.
		checks["wechat_token"] = "ok"
		if err := s.wechat.CheckToken(ctx); err != nil {
			var api *wechat.APIError
			if errors.As(err, &api) && api.Kind() == wechat.KindConfig {
				checks["wechat_token"], status = "configuration error "+strconv.Itoa(api.Code), http.StatusServiceUnavailable
			} else {
				checks["wechat_token"] = "unavailable"
			}
			s.log.Warn("readiness: wechat access token", zap.Error(err))
		}
	}
	body := map[string]any{"status": "ready", "checks": checks}
	if status != http.StatusOK {
		body["status"] = "not ready"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// accessLog logs each request's method, route, status and duration; never bodies or query strings
// (WeChat puts signatures in the query).
func accessLog(log *zap.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		log.Debug("request", zap.String("method", r.Method), zap.String("path", r.URL.Path),
			zap.Int("status", rec.status), zap.Duration("duration", time.Since(start)))
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// rulesWatchEvery is how often a replica looks whether the firm's rules changed elsewhere.
const rulesWatchEvery = 5 * time.Second

// engineRules gives the compliance API the engine's rules: those in force, and a reload.
type engineRules struct {
	engine *bridge.Engine
	src    bridge.RuleSource
}

func (r engineRules) Rules() *supervision.Set { return r.engine.Rules() }

func (r engineRules) ReloadRules(ctx context.Context) error { return r.engine.LoadRules(ctx, r.src) }
