package stacks

import (
	"context"
	"fmt"
	"net"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// langHost is the language runtime of an inline program: the engine (`pulumi up
// --client=<addr>`) calls Run, and the program runs here, in kiln's own process, against
// the engine's resource monitor.
type langHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	program pulumi.RunFunc
	addr    string
	srv     *grpc.Server
	served  chan struct{}
}

var _ pulumirpc.LanguageRuntimeServer = (*langHost)(nil)

// startLangHost serves program's language runtime on a free port of 127.0.0.1.
func startLangHost(program pulumi.RunFunc) (*langHost, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("language host: %w", err)
	}
	h := &langHost{
		program: program,
		addr:    lis.Addr().String(),
		srv:     grpc.NewServer(),
		served:  make(chan struct{}),
	}
	pulumirpc.RegisterLanguageRuntimeServer(h.srv, h)
	go func() {
		defer close(h.served)
		_ = h.srv.Serve(lis)
	}()
	return h, nil
}

// stop ends the server; call it once the engine has exited. A program still running
// (the engine died under it) sees its context cancelled.
func (h *langHost) stop() {
	h.srv.Stop()
	<-h.served
}

// GetRequiredPlugins answers that the program needs no plugins: kiln's provider is
// found on PATH.
func (h *langHost) GetRequiredPlugins(context.Context, *pulumirpc.GetRequiredPluginsRequest) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

// GetPluginInfo reports a version; the engine asks for one but does not use it for
// inline programs.
func (h *langHost) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: "1.0.0"}, nil
}

// InstallDependencies has nothing to install: the program is compiled into kiln.
func (h *langHost) InstallDependencies(*pulumirpc.InstallDependenciesRequest, pulumirpc.LanguageRuntime_InstallDependenciesServer) error {
	return nil
}

// Run runs the program once for the engine. A failing program is a RunResponse error,
// which the engine reports as a diagnostic; a gRPC error would be an engine failure.
func (h *langHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := pulumi.RunInfo{
		Project:          req.GetProject(),
		Stack:            req.GetStack(),
		Config:           req.GetConfig(),
		ConfigSecretKeys: req.GetConfigSecretKeys(),
		Parallel:         req.GetParallel(),
		DryRun:           req.GetDryRun(),
		MonitorAddr:      req.GetMonitorAddress(),
		Organization:     req.GetOrganization(),
	}
	// The engine passes its own address as the program's first argument.
	if args := req.GetArgs(); len(args) > 0 {
		info.EngineAddr = args[0]
	}
	pctx, err := pulumi.NewContext(ctx, info)
	if err != nil {
		return nil, err
	}
	defer pctx.Close()
	if err := runProgram(pctx, h.program); err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// runProgram runs program to completion, turning a panic into an error: the panic
// must not take kiln down with it.
func runProgram(ctx *pulumi.Context, program pulumi.RunFunc) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("program panicked: %v", r)
		}
	}()
	return pulumi.RunWithContext(ctx, program)
}
