# The seqrelay binary: run, worker, start, state, append, ... (see README.md).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/seqrelay ./cmd/seqrelay

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/seqrelay /usr/local/bin/seqrelay
ENTRYPOINT ["/usr/local/bin/seqrelay"]
CMD ["help"]
