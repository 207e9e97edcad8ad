// The Socket.IO benchmark application on Node's socket.io 4, the reference
// for the Socket.IO scenarios; the same events as sio_app.py:
//   echo      -> the data comes back as the acknowledgement
//   join      -> the client enters the room "bench" (acknowledged)
//   broadcast -> the server emits "b" with the data to the room "bench"
//
//   node node_sio_server.js PORT   (BENCH_PING_INTERVAL / BENCH_PING_TIMEOUT in seconds)
'use strict';

const http = require('http');
const { Server } = require('socket.io');

const port = Number(process.argv[2] || 5200);
const pingInterval = 1000 * Number(process.env.BENCH_PING_INTERVAL || 25);
const pingTimeout = 1000 * Number(process.env.BENCH_PING_TIMEOUT || 20);
const ROOM = 'bench';

const httpServer = http.createServer((req, res) => {
  res.writeHead(404);
  res.end();
});
const io = new Server(httpServer, {
  pingInterval,
  pingTimeout,
  maxHttpBufferSize: 1e6,
  perMessageDeflate: false,
  serveClient: false,
  cors: { origin: '*' },
});

io.on('connection', (socket) => {
  socket.on('echo', (data, ack) => { if (typeof ack === 'function') ack(data); });
  socket.on('join', (ack) => {
    socket.join(ROOM);
    if (typeof ack === 'function') ack(true);
  });
  socket.on('broadcast', (data) => { io.to(ROOM).emit('b', data); });
});

httpServer.listen(port, '127.0.0.1', 4096, () => {
  process.stdout.write(`listening on ${port}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
