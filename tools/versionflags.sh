# Sourced by build.sh and compat/build.sh.
# k8s_version_flags v1.MINOR.PATCH prints the -ldflags -X flags that stamp a
# Kubernetes binary built from its Go module with that version, as a
# release build does, so that clients see it (kubectl version, discovery).
k8s_version_flags() {
  local v=$1 minor pkg
  minor=${v#v1.}; minor=${minor%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    printf ' -X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s' "$pkg" "$v" "$pkg" "$pkg" "$minor"
    printf ' -X %s.gitTreeState=clean -X %s.gitCommit=0000000000000000000000000000000000000000' "$pkg" "$pkg"
    printf ' -X %s.buildDate=1970-01-01T00:00:00Z' "$pkg"
  done
}
