# Build: a static binary, version stamped.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/replicator .

# Run: nothing but the binary and CA certificates, as a numeric non-root user.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/replicator /replicator
USER 65532:65532
EXPOSE 9102
ENTRYPOINT ["/replicator"]
