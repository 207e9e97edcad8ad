// Echo server on Node's engine.io 6, the reference for the benchmarks.
// Every message goes back to its sender; the text message 'broadcast' makes
// the server send 'b' to every connected client instead, and 'big:N' sends
// its sender N bytes of text.
//
//   node node_server.js PORT   (BENCH_PING_INTERVAL / BENCH_PING_TIMEOUT in seconds)
'use strict';

const http = require('http');
const engine = require('engine.io');

const port = Number(process.argv[2] || 5100);
const pingInterval = 1000 * Number(process.env.BENCH_PING_INTERVAL || 25);
const pingTimeout = 1000 * Number(process.env.BENCH_PING_TIMEOUT || 20);

const httpServer = http.createServer((req, res) => {
  res.writeHead(404);
  res.end();
});
const server = engine.attach(httpServer, {
  pingInterval,
  pingTimeout,
  maxHttpBufferSize: 1e6,
  perMessageDeflate: false,
  cors: { origin: '*' },
});

server.on('connection', (socket) => {
  socket.on('message', (data) => {
    if (data === 'broadcast') {
      for (const id in server.clients) server.clients[id].send('b');
    } else if (typeof data === 'string' && data.startsWith('big:')) {
      socket.send('x'.repeat(Number(data.slice(4))));
    } else {
      socket.send(data);
    }
  });
});

httpServer.listen(port, '127.0.0.1', 4096, () => {
  process.stdout.write(`listening on ${port}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
