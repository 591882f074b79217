package replicate

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The rules of pull before content: where the target is, what it names,
// whether that can be read and leads to no cycle, whether the source exists,
// consents and has a type the target takes. Each case says what the plan
// comes to and the checks it made, in order ("-" marks one that failed).
func TestPlanPullRules(t *testing.T) {
	ref := Ref{Namespace: "certs", Name: "wildcard"}
	remote := Ref{Cluster: "hub", Namespace: "certs", Name: "wildcard"}
	// chain follows b -> c -> the target (app/tls).
	chain := func(r Ref) (Ref, bool) {
		switch r {
		case ref:
			return Ref{Namespace: "b", Name: "x"}, true
		case Ref{Namespace: "b", Name: "x"}:
			return Ref{Namespace: "app", Name: "tls"}, true
		}
		return Ref{}, false
	}
	ends := func(r Ref) (Ref, bool) {
		if r == ref {
			return Ref{Namespace: "b", Name: "x"}, true
		}
		return Ref{}, false
	}
	gates := []string{"--exclude-namespaces", ann.ReplicateFrom, "cycle", "source", ann.ReplicationAllowed, ann.ReplicationAllowedNS, "type"}
	tests := map[string]struct {
		in      PullInput // Target, Ref, RefKey and Gate filled in when empty
		outcome PullOutcome
		reason  string // of the Event; "" for none
		write   bool
		checks  []string
	}{
		"a source that consents fills the target, every check passed": {
			in:      PullInput{Source: tlsSource("A", allowed("app")), Next: ends},
			outcome: PullFilled, reason: ReasonReplicated, write: true, checks: gates,
		},
		"a target in an excluded namespace is left alone and told so": {
			in:      PullInput{Target: filledPlaceholder(), Exclude: patterns("app"), Source: tlsSource("B", allowed("app"))},
			outcome: PullExcluded, reason: ReasonNamespaceExcluded, checks: []string{"-" + gates[0]},
		},
		"a target in a terminating namespace: nothing is done or told": {
			in:      PullInput{Target: filledPlaceholder(), Namespace: Namespace{Name: "app", Terminating: true}, Source: tlsSource("B", allowed("app"))},
			outcome: PullGone, checks: []string{gates[0], "-namespace"},
		},
		"a target whose namespace the cache no longer holds, likewise": {
			in:      PullInput{Target: filledPlaceholder(), NamespaceGone: true},
			outcome: PullGone, checks: []string{gates[0], "-namespace"},
		},
		"a reference that does not parse is refused, and the data kept": {
			in:      PullInput{Target: filledPlaceholder(), Ref: Ref{}, RefErr: fmt.Errorf("not a reference")},
			outcome: PullRefused, reason: ReasonInvalidAnnotation, checks: []string{gates[0], "-" + gates[1]},
		},
		"a target naming itself is a cycle": {
			in:      PullInput{Ref: Ref{Namespace: "app", Name: "tls"}, Source: tlsSource("A", allowed("app"))},
			outcome: PullRefused, reason: ReasonCycle, checks: []string{gates[0], gates[1], "-cycle"},
		},
		"a chain that leads back to the target is a cycle": {
			in:      PullInput{Target: filledPlaceholder(), Source: tlsSource("A", allowed("app")), Next: chain},
			outcome: PullRefused, reason: ReasonCycle, checks: []string{gates[0], gates[1], "-cycle"},
		},
		"a source in a cluster that is not configured is refused": {
			in:      PullInput{Ref: remote, SourceErr: fmt.Errorf("cluster %q is %w for Secrets", "hub", ErrNoSourceCluster)},
			outcome: PullRefused, reason: ReasonInvalidAnnotation, checks: []string{gates[0], gates[1], "-source cluster"},
		},
		"a source in a namespace the replicator does not watch there is refused": {
			in:      PullInput{Ref: remote, SourceErr: ErrNotWatched},
			outcome: PullRefused, reason: ReasonInvalidAnnotation, checks: []string{gates[0], gates[1], "-source cluster"},
		},
		"a source cluster still loading leaves the target as it is, untold": {
			in:      PullInput{Target: filledPlaceholder(), Ref: remote, SourceErr: &UnavailableError{Cluster: "hub", Namespace: "certs", Pending: true, Reason: "loading"}},
			outcome: PullUnavailable, checks: []string{gates[0], gates[1], "-source cluster"},
		},
		"a source cluster that cannot be read keeps the data, with a Warning": {
			in:      PullInput{Target: filledPlaceholder(), Ref: remote, SourceErr: &UnavailableError{Cluster: "hub", Namespace: "certs", Reason: "connection refused"}},
			outcome: PullUnavailable, reason: ReasonClusterUnavailable, checks: []string{gates[0], gates[1], "-source cluster"},
		},
		"a source in another cluster is not walked for cycles": {
			in: PullInput{Ref: remote, Source: tlsSource("A", with(allowed("app"), ann.ReplicationAllowedClusters, "spoke")), Next: chain,
				Gate: Gate{Annotations: ann, Cluster: "spoke"}},
			outcome: PullFilled, reason: ReasonReplicated, write: true,
			checks: []string{gates[0], gates[1], "source cluster", "source", ann.ReplicationAllowed, ann.ReplicationAllowedNS, "--cluster-name", ann.ReplicationAllowedClusters, "type"},
		},
		"a missing source revokes what came from it": {
			in:      PullInput{Target: filledPlaceholder()},
			outcome: PullRefused, reason: ReasonSourceNotFound, write: true, checks: []string{gates[0], gates[1], "cycle", "-source"},
		},
		"a source that does not consent: its gate's checks, the last one failed": {
			in:      PullInput{Target: filledPlaceholder(), Source: tlsSource("A", allowed("other"))},
			outcome: PullRefused, reason: ReasonDenied, write: true, checks: []string{gates[0], gates[1], "cycle", "source", gates[4], "-" + gates[5]},
		},
		"a source of a type the target cannot take leaves it as it is": {
			in:      PullInput{Target: filledPlaceholder(), Source: &Object{Namespace: "certs", Name: "wildcard", Type: "Opaque", Data: data("a", "b"), Annotations: allowed("app")}},
			outcome: PullRefused, reason: ReasonTypeMismatch, checks: append(append([]string{}, gates[:6]...), "-type"),
		},
		"an immutable target that differs from its source is not written": {
			in:      PullInput{Target: func() Object { o := tlsPlaceholder(nil); o.Immutable = true; return o }(), Source: tlsSource("A", allowed("app"))},
			outcome: PullRefused, reason: ReasonTargetImmutable, checks: append(append([]string{}, gates...), "-immutable"),
		},
		"an immutable target whose replicated keys must go keeps them": {
			in:      PullInput{Target: func() Object { o := filledPlaceholder(); o.Immutable = true; return o }()},
			outcome: PullRefused, reason: ReasonTargetImmutable, checks: []string{gates[0], gates[1], "cycle", "-source", "-immutable"},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			in := tt.in
			if in.Target.Name == "" {
				in.Target = tlsPlaceholder(nil)
			}
			if in.Ref == (Ref{}) && in.RefErr == nil {
				in.Ref = ref
			}
			if in.Gate.Annotations.ReplicateFrom == "" {
				in.Gate.Annotations = ann
			}
			in.RefKey, in.Rules, in.Now = ann.ReplicateFrom, Secrets().Rules(), now
			plan := PlanPull(in)
			assert.Equal(t, tt.outcome, plan.Outcome)
			if tt.reason == "" {
				assert.Nil(t, plan.Event)
			} else {
				require.NotNil(t, plan.Event)
				assert.Equal(t, tt.reason, plan.Event.Reason)
			}
			assert.Equal(t, tt.write, plan.Write != nil, "a write")
			var checks []string
			for _, c := range plan.Checks {
				if c.Passed {
					checks = append(checks, c.What)
				} else {
					checks = append(checks, "-"+c.What)
				}
			}
			assert.Equal(t, tt.checks, checks)
			if last := plan.Checks[len(plan.Checks)-1]; !last.Passed && plan.Event != nil && plan.Event.Type == Warning && last.What != in.RefKey {
				assert.Equal(t, plan.Event.Message, last.Detail, "the check that decided says what the Event says")
			}
		})
	}
}

// What a pull plan comes to, once its write (if any) is made: the result
// counted and the state kept, as the controller reports them.
func TestPullPlanResultAndState(t *testing.T) {
	denied := warning(ReasonDenied, "no")
	tests := map[string]struct {
		plan    PullPlan
		written Result
		result  Result
		state   itemState
	}{
		"filled by this write":                           {plan: PullPlan{Outcome: PullFilled}, written: ResultWritten, result: ResultWritten, state: itemState{StateFilled, ""}},
		"filled already":                                 {plan: PullPlan{Outcome: PullFilled}, result: ResultUnchanged, state: itemState{StateFilled, ""}},
		"refused, its keys removed":                      {plan: PullPlan{Outcome: PullRefused, Event: denied}, written: ResultWritten, result: ResultRefused, state: itemState{StateRefused, ReasonDenied}},
		"excluded":                                       {plan: PullPlan{Outcome: PullExcluded, Event: warning(ReasonNamespaceExcluded, "x")}, result: ResultRefused, state: itemState{StateRefused, ReasonNamespaceExcluded}},
		"its source cluster unreadable":                  {plan: PullPlan{Outcome: PullUnavailable}, result: ResultUnavailable, state: itemState{StateUnavailable, ""}},
		"a dry run of a revocation":                      {plan: PullPlan{Outcome: PullRefused, Event: denied}, written: ResultDryRun, result: ResultDryRun, state: itemState{StateDryRun, ""}},
		"a write the guard holds back":                   {plan: PullPlan{Outcome: PullFilled}, written: ResultHeld, result: ResultHeld, state: itemState{StateHeld, ""}},
		"a write that failed, whatever the plan came to": {plan: PullPlan{Outcome: PullRefused, Event: denied}, written: ResultFailed, result: ResultFailed, state: itemState{StateFailed, ""}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			r, state := tt.plan.result(tt.written)
			assert.Equal(t, tt.result, r)
			assert.Equal(t, tt.state, state)
		})
	}
}

// A source's pull permission annotations call for a Warning each time they
// say something the gate cannot read; the gate decides all the same.
func TestGateProblems(t *testing.T) {
	tests := map[string]struct {
		a           Annotations // zero: ann
		annotations map[string]string
		want        []string // the messages' beginnings
	}{
		"readable annotations: none":          {annotations: allowed("app, blog-.*")},
		"an allow value that is no boolean":   {annotations: with(allowed("app"), ann.ReplicationAllowed, "yes"), want: []string{ann.ReplicationAllowed + `: "yes" is not a boolean`}},
		"an invalid entry of the namespaces":  {annotations: allowed("app,[x"), want: []string{ann.ReplicationAllowedNS}},
		"an invalid entry of the clusters":    {annotations: with(allowed("app"), ann.ReplicationAllowedClusters, "("), want: []string{ann.ReplicationAllowedClusters}},
		"reflector's selector, when it reads": {a: dialects, annotations: map[string]string{rk.Allowed: "true", rk.AllowedSelector: "a in ("}, want: []string{rk.AllowedSelector + ": invalid label selector"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			a := tt.a
			if a.ReplicateFrom == "" {
				a = ann
			}
			problems := Gate{Annotations: a}.Problems(tlsSource("A", tt.annotations))
			require.Len(t, problems, len(tt.want))
			for i, p := range problems {
				assert.Equal(t, ReasonInvalidAnnotation, p.Reason)
				assert.Equal(t, Warning, p.Type)
				assert.Contains(t, p.Message, tt.want[i])
			}
		})
	}
}
