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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubereplicator/replicator/replicate"
)

// This file is `replicator explain` (also `kubectl replicator explain`
// when the binary is installed as kubectl-replicator): what the replicator
// would do with one object, and why.

const explainUsage = `usage: replicator explain [flags] KIND/NAMESPACE/NAME

Reads the cluster as the caller (kubeconfig), runs the replicator's own
decisions on the object in dry run, and prints what it would write and why.
It writes nothing. KIND is secret, configmap, role, rolebinding or
serviceaccount. The replicator's settings come from its Deployment's
arguments (--deployment, or the one Deployment labelled
app.kubernetes.io/name=replicator); its flags given here override them.

Flags:
`

// explainOnlyFlags are explain's own flags, not the replicator's.
var explainOnlyFlags = map[string]bool{"context": true, "o": true, "output": true, "deployment": true, "timeout": true}

// runExplain is `replicator explain`; it returns the exit code.
func runExplain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replicator explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var given config
	var logLevel string
	given.define(fs, &logLevel)
	newClusterFlags(fs)
	kubeContext := fs.String("context", "", "the kubeconfig context to use")
	output := fs.String("output", "text", "text or json")
	fs.StringVar(output, "o", "text", "short for --output")
	deployment := fs.String("deployment", "", "NAMESPACE/NAME of the replicator's Deployment, whose arguments give the settings (default: the one Deployment labelled app.kubernetes.io/name=replicator, else the binary's defaults; -: the binary's defaults)")
	timeout := fs.Duration("timeout", time.Minute, "how long reading the cluster may take")
	fs.Usage = func() {
		fmt.Fprint(stderr, explainUsage)
		fs.PrintDefaults()
	}
	var objects []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		objects = append(objects, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "replicator explain: "+format+"\n", a...)
		return 1
	}
	if len(objects) != 1 {
		fmt.Fprint(stderr, "replicator explain: name one object, as KIND/NAMESPACE/NAME (for example secret/shop/wildcard-tls)\n")
		return 2
	}
	if *output != "text" && *output != "json" {
		fmt.Fprintf(stderr, "replicator explain: -o %q is neither text nor json\n", *output)
		return 2
	}
	kind, namespace, name, err := parseObject(objects[0])
	if err != nil {
		fmt.Fprintf(stderr, "replicator explain: %v\n", err)
		return 2
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = given.kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: *kubeContext}).ClientConfig()
	if err != nil {
		return fail("loading kubeconfig: %v", err)
	}
	withClientDefaults(cfg)
	cfg.QPS, cfg.Burst = -1, 0
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fail("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	// The settings: the Deployment's arguments, then the flags given here.
	deployArgs, from, err := deploymentArgs(ctx, client, *deployment)
	if err != nil {
		return fail("%v", err)
	}
	var overrides []string
	fs.Visit(func(f *flag.Flag) {
		if !explainOnlyFlags[f.Name] && f.Name != "kubeconfig" && !strings.HasPrefix(f.Name, "source-cluster") {
			overrides = append(overrides, "--"+f.Name+"="+f.Value.String())
			from += ", --" + f.Name + " given here"
		}
	})
	c, err := parseFlags(append(deployArgs, overrides...), io.Discard)
	if err != nil {
		return fail("the replicator's settings (%s): %v", from, err)
	}
	enabled := false
	for _, k := range c.kinds() {
		enabled = enabled || k.Name() == kind.Name()
	}
	var ex *replicate.Explanation
	if enabled {
		ex, err = replicate.Explain(ctx, client, kind, namespace, name, c.options(), *timeout)
		if err != nil {
			return fail("%v", err)
		}
	} else {
		ex = &replicate.Explanation{Kind: kind.Name(), Namespace: namespace, Name: name, Writes: []replicate.Observation{}, Events: []replicate.Observation{},
			Notes: []string{"the replicator does not replicate " + kind.Name() + "s with these settings (--replicate-...=false)"}}
	}
	ex.Settings = from
	if *output == "json" {
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
	for _, k := range []replicate.Kind{replicate.Secrets(), replicate.ConfigMaps(), replicate.Roles(), replicate.RoleBindings(), replicate.ServiceAccounts()} {
		n := strings.ToLower(k.Name())
		kinds[n], kinds[n+"s"] = k, k
	}
	kinds["cm"], kinds["sa"] = kinds["configmap"], kinds["serviceaccount"]
	kind, ok := kinds[strings.ToLower(parts[0])]
	if !ok {
		return nil, "", "", fmt.Errorf("unknown kind %q: one of secret, configmap, role, rolebinding, serviceaccount", parts[0])
	}
	for _, errs := range [][]string{validation.IsDNS1123Label(parts[1]), kind.ValidName(parts[2])} {
		if len(errs) > 0 {
			return nil, "", "", fmt.Errorf("%q: %s", s, strings.Join(errs, "; "))
		}
	}
	return kind, parts[1], parts[2], nil
}

// deploymentArgs returns the arguments of the replicator's Deployment named
// ref (NAMESPACE/NAME), or of the one labelled
// app.kubernetes.io/name=replicator when ref is empty, and says where the
// settings come from. Without ref and without such a Deployment (or the
// right to list Deployments), the binary's defaults apply.
func deploymentArgs(ctx context.Context, client kubernetes.Interface, ref string) ([]string, string, error) {
	if ref == "-" {
		return nil, "the binary's defaults (--deployment=-)", nil
	}
	if ref != "" {
		ns, name, ok := strings.Cut(ref, "/")
		if !ok || ns == "" || name == "" {
			return nil, "", fmt.Errorf("--deployment %q is not NAMESPACE/NAME", ref)
		}
		d, err := client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, "", fmt.Errorf("reading deployment %s: %v", ref, err)
		}
		return containerArgs(d), "deployment " + ref, nil
	}
	list, err := client.AppsV1().Deployments("").List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=replicator"})
	if err != nil {
		return nil, "the binary's defaults (no Deployment found: " + oneLine(err) + ")", nil
	}
	switch len(list.Items) {
	case 0:
		return nil, "the binary's defaults (no Deployment labelled app.kubernetes.io/name=replicator)", nil
	case 1:
		d := list.Items[0]
		return containerArgs(&d), "deployment " + d.Namespace + "/" + d.Name, nil
	}
	var names []string
	for _, d := range list.Items {
		names = append(names, d.Namespace+"/"+d.Name)
	}
	return nil, "", fmt.Errorf("several replicator Deployments (%s): name one with --deployment", strings.Join(names, ", "))
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
