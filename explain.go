package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubereplicator/replicator/replicate"
)

// This file is `replicator explain` (also `kubectl replicator explain`
// when the binary is installed as kubectl-replicator): what the replicator
// would do with one object, and why.

// explainUsage is explain's help before its flags; KIND's names come from
// the registry of kinds.
func explainUsage() string {
	return explainUsageHead +
		wrap("It writes nothing. KIND is "+listed(kindNames(), "or")+". The replicator's settings come from its Deployment's", 72) +
		explainUsageTail
}

const explainUsageHead = `usage: replicator explain [flags] KIND/NAMESPACE/NAME

Reads the cluster as the caller (kubeconfig), runs the replicator's own
decisions on the object in dry run, and prints what it would write and why.
`

const explainUsageTail = `arguments (--deployment, or the one Deployment labelled
app.kubernetes.io/name=replicator); the replicator's flags given here
override them. Only the replicator's flags that change the answer are
accepted; those that do not (logs, metrics, leader election, rates,
source clusters: explain reads this cluster only) are not listed.

Flags:
`

// explainIgnores reports whether explain ignores the replicator's flag of
// that name: it reads this cluster only, as the caller, once, in dry run,
// without logs, metrics, Events or a Lease. Such flags are not accepted;
// the Deployment's are read and have no effect.
func explainIgnores(name string) bool {
	switch name {
	case "kubeconfig", // explain's own: kubectl's loading rules
		"source-cluster", "source-cluster-namespaces",
		"resync-period", "status-addr", "log-level", "log-format", "profiling", "version",
		"workers", "kube-api-qps", "kube-api-burst", "normal-event-qps", "normal-event-burst",
		"leader-elect", "leader-elect-lease-name", "leader-elect-namespace",
		"leader-elect-lease-duration", "leader-elect-renew-deadline", "leader-elect-retry-period",
		"dry-run", "sync-by-content":
		return true
	}
	return false
}

// explainRequest is what explain is asked: the object, where the
// replicator's settings come from, and the output.
type explainRequest struct {
	kind            replicate.Kind
	namespace, name string
	// deployment names the replicator's Deployment (see deploymentArgs);
	// overrides are the replicator's flags given to explain.
	deployment string
	overrides  []string
	output     string
	timeout    time.Duration
}

// runExplain is `replicator explain`; it returns the exit code.
func runExplain(args []string, stdout, stderr io.Writer) int {
	fs, given := explainFlags(stderr)
	objects, code, ok := explainArgs(fs, args)
	if !ok {
		return code
	}
	if len(objects) != 1 {
		fmt.Fprint(stderr, "replicator explain: name one object, as KIND/NAMESPACE/NAME (for example secret/shop/wildcard-tls)\n")
		return 2
	}
	if *given.output != "text" && *given.output != "json" {
		fmt.Fprintf(stderr, "replicator explain: -o %q is neither text nor json\n", *given.output)
		return 2
	}
	kind, namespace, name, err := parseObject(objects[0])
	if err != nil {
		fmt.Fprintf(stderr, "replicator explain: %v\n", err)
		return 2
	}
	client, err := explainClient(*given.kubeconfig, *given.context)
	if err != nil {
		fmt.Fprintf(stderr, "replicator explain: %v\n", err)
		return 1
	}
	req := explainRequest{kind: kind, namespace: namespace, name: name, deployment: *given.deployment, output: *given.output, timeout: *given.timeout}
	fs.Visit(func(f *flag.Flag) {
		if given.replicatorFlag[f.Name] {
			req.overrides = append(req.overrides, "--"+f.Name+"="+f.Value.String())
		}
	})
	return explain(client, req, stdout, stderr)
}

// explainFlagValues are what explain's flags say: its own, and which of
// the replicator's were defined (replicatorFlag).
type explainFlagValues struct {
	kubeconfig, context, output, deployment *string
	timeout                                 *time.Duration
	replicatorFlag                          map[string]bool
}

// explainFlags defines explain's flags: its own and the replicator's that
// change the answer, as the replicator defines them.
func explainFlags(stderr io.Writer) (*flag.FlagSet, explainFlagValues) {
	fs := flag.NewFlagSet("replicator explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	replicator := flag.NewFlagSet("replicator", flag.ContinueOnError)
	var given config
	var logLevel string
	given.define(replicator, &logLevel)
	v := explainFlagValues{replicatorFlag: map[string]bool{}}
	replicator.VisitAll(func(f *flag.Flag) {
		if !explainIgnores(f.Name) {
			fs.Var(f.Value, f.Name, f.Usage)
			v.replicatorFlag[f.Name] = true
		}
	})
	v.kubeconfig = fs.String("kubeconfig", "", "path to the kubeconfig to read the cluster with (default: $KUBECONFIG, else ~/.kube/config, as kubectl reads them; in a pod without either, its in-cluster configuration)")
	v.context = fs.String("context", "", "the kubeconfig context to use")
	v.output = fs.String("output", "text", "text or json")
	fs.StringVar(v.output, "o", "text", "short for --output")
	v.deployment = fs.String("deployment", "", "NAMESPACE/NAME of the replicator's Deployment, whose arguments give the settings (default: the one Deployment labelled app.kubernetes.io/name=replicator, else the binary's defaults, with a warning when Deployments cannot be listed; -: the binary's defaults)")
	v.timeout = fs.Duration("timeout", time.Minute, "how long reading the cluster may take")
	fs.Usage = func() {
		fmt.Fprint(stderr, explainUsage())
		fs.PrintDefaults()
	}
	return fs, v
}

// explainArgs parses args, flags before and after the object names, and
// returns the names. When it cannot (or help was asked for), ok is false
// and code is the exit code.
func explainArgs(fs *flag.FlagSet, args []string) (objects []string, code int, ok bool) {
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, 0, false
			}
			return nil, 2, false
		}
		if fs.NArg() == 0 {
			return objects, 0, true
		}
		objects = append(objects, fs.Arg(0))
		rest = fs.Args()[1:]
	}
}

// explainClient reads the cluster as the kubeconfig's user (kubectl's
// loading rules), without a client-side rate limit.
func explainClient(kubeconfig, kubeContext string) (kubernetes.Interface, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %v", err)
	}
	withClientDefaults(cfg)
	cfg.QPS, cfg.Burst = -1, 0
	return kubernetes.NewForConfig(cfg)
}

// explain answers req from the cluster client reads; it returns the exit
// code.
func explain(client kubernetes.Interface, req explainRequest, stdout, stderr io.Writer) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "replicator explain: "+format+"\n", a...)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), req.timeout)
	defer cancel()

	// The settings: the Deployment's arguments, then the flags given here.
	settings, err := deploymentArgs(ctx, client, req.deployment)
	if err != nil {
		return fail("%v", err)
	}
	from := settings.from
	for _, o := range req.overrides {
		name, _, _ := strings.Cut(o, "=")
		from += ", " + name + " given here"
	}
	c, err := parseFlags(append(settings.args, req.overrides...), io.Discard)
	if err != nil {
		return fail("the replicator's settings (%s): %v", from, err)
	}
	enabled := false
	for _, k := range c.kinds() {
		enabled = enabled || k.Name() == req.kind.Name()
	}
	var ex *replicate.Explanation
	if enabled {
		ex, err = replicate.Explain(ctx, client, req.kind, req.namespace, req.name, c.options(), req.timeout)
		if err != nil {
			return fail("%v", err)
		}
	} else {
		ex = &replicate.Explanation{Kind: req.kind.Name(), Namespace: req.namespace, Name: req.name, Writes: []replicate.Observation{}, Events: []replicate.Observation{},
			Notes: []string{"the replicator does not replicate " + req.kind.Plural() + " with these settings (--replicate-...=false)"}}
	}
	ex.Settings = from
	if settings.warning != "" {
		ex.Warnings = append(ex.Warnings, settings.warning)
	}
	if req.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(ex); err != nil {
			return fail("%v", err)
		}
		return 0
	}
	fmt.Fprint(stdout, ex.Text())
	return 0
}

// parseObject reads KIND/NAMESPACE/NAME.
func parseObject(s string) (replicate.Kind, string, string, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
		return nil, "", "", fmt.Errorf("%q is not KIND/NAMESPACE/NAME (for example secret/shop/wildcard-tls)", s)
	}
	kinds := map[string]replicate.Kind{}
	for _, k := range replicate.Kinds() {
		kinds[strings.ToLower(k.Name())], kinds[strings.ToLower(k.Plural())] = k, k
		if short := k.ShortName(); short != "" {
			kinds[short] = k
		}
	}
	kind, ok := kinds[strings.ToLower(parts[0])]
	if !ok {
		return nil, "", "", fmt.Errorf("unknown kind %q: one of %s", parts[0], strings.Join(kindNames(), ", "))
	}
	for _, errs := range [][]string{validation.IsDNS1123Label(parts[1]), kind.ValidName(parts[2])} {
		if len(errs) > 0 {
			return nil, "", "", fmt.Errorf("%q: %s", s, strings.Join(errs, "; "))
		}
	}
	return kind, parts[1], parts[2], nil
}

// kindNames are the kinds as explain names them: in lower case, in the
// registry's order.
func kindNames() []string {
	var names []string
	for _, k := range replicate.Kinds() {
		names = append(names, strings.ToLower(k.Name()))
	}
	return names
}

// wrap breaks text into lines of at most width bytes, between words, each
// line ending in a newline.
func wrap(text string, width int) string {
	var b strings.Builder
	line := 0
	for i, word := range strings.Fields(text) {
		switch {
		case i == 0:
		case line+1+len(word) > width:
			b.WriteString("\n")
			line = 0
		default:
			b.WriteString(" ")
			line++
		}
		b.WriteString(word)
		line += len(word)
	}
	b.WriteString("\n")
	return b.String()
}

// replicatorSettings are the replicator's arguments explain takes and
// where they come from.
type replicatorSettings struct {
	args []string
	from string
	// warning says why the replicator's Deployment could not be read,
	// when the binary's defaults apply for that reason: the answer may
	// then differ from the installed replicator's.
	warning string
}

// deploymentArgs returns the arguments of the replicator's Deployment named
// ref (NAMESPACE/NAME), or of the one labelled
// app.kubernetes.io/name=replicator when ref is empty, and says where the
// settings come from. Without ref and without such a Deployment, the
// binary's defaults apply; when Deployments cannot be listed (no right to
// list them, most often), they apply too, with a warning that says so.
func deploymentArgs(ctx context.Context, client kubernetes.Interface, ref string) (replicatorSettings, error) {
	if ref == "-" {
		return replicatorSettings{from: "the binary's defaults (--deployment=-)"}, nil
	}
	if ref != "" {
		ns, name, ok := strings.Cut(ref, "/")
		if !ok || ns == "" || name == "" {
			return replicatorSettings{}, fmt.Errorf("--deployment %q is not NAMESPACE/NAME", ref)
		}
		d, err := client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsForbidden(err) {
			return replicatorSettings{}, fmt.Errorf("reading deployment %s: explain needs get on deployments (apps) in namespace %s: %v", ref, ns, oneLine(err))
		}
		if err != nil {
			return replicatorSettings{}, fmt.Errorf("reading deployment %s: %v", ref, err)
		}
		return replicatorSettings{args: containerArgs(d), from: "deployment " + ref}, nil
	}
	list, err := client.AppsV1().Deployments("").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=replicator"})
	if err != nil {
		defaults := replicatorSettings{from: "the binary's defaults (the replicator's Deployment could not be read)"}
		const instead = "the binary's defaults were used, and the answer may differ from the installed replicator's (or name it with --deployment NAMESPACE/NAME, which needs get on it, or give its settings as flags)"
		if apierrors.IsForbidden(err) {
			defaults.warning = "cannot list deployments (apps) cluster-wide: forbidden; explain needs list on deployments to read the replicator's settings from its Deployment, so " + instead
		} else {
			defaults.warning = "cannot list deployments (apps) cluster-wide (" + oneLine(err) + "), so " + instead
		}
		return defaults, nil
	}
	switch len(list.Items) {
	case 0:
		return replicatorSettings{from: "the binary's defaults (no Deployment labelled app.kubernetes.io/name=replicator)"}, nil
	case 1:
		d := list.Items[0]
		return replicatorSettings{args: containerArgs(&d), from: "deployment " + d.Namespace + "/" + d.Name}, nil
	}
	var names []string
	for _, d := range list.Items {
		names = append(names, d.Namespace+"/"+d.Name)
	}
	return replicatorSettings{}, fmt.Errorf("several replicator Deployments (%s): name one with --deployment", strings.Join(names, ", "))
}

// containerArgs returns the replicator container's arguments, without the
// source clusters (explain reads this cluster only), after the Deployment's
// namespace as the replicator's own (which the pod learns from
// POD_NAMESPACE).
func containerArgs(d *appsv1.Deployment) []string {
	containers := d.Spec.Template.Spec.Containers
	for _, c := range containers {
		if c.Name != "replicator" && len(containers) > 1 {
			continue
		}
		args := []string{"--namespace=" + d.Namespace}
		for _, a := range c.Args {
			if !strings.HasPrefix(a, "--source-cluster") {
				args = append(args, a)
			}
		}
		return args
	}
	return nil
}

func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", " ")
}
