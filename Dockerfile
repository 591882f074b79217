# Build: a static binary, version stamped, cross-compiled on the builder's
# own platform for the target's (docker buildx build --platform
# linux/amd64,linux/arm64 sets TARGETOS and TARGETARCH).
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS
ARG TARGETARCH
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/replicator .

# Run: nothing but the binary and CA certificates, as a numeric non-root user.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/replicator /replicator
USER 65532:65532
EXPOSE 9102
ENTRYPOINT ["/replicator"]
