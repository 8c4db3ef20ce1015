/* The HTTP server: libmicrohttpd with its epoll thread pool, glued to the router. */
#ifndef LF_SERVER_H
#define LF_SERVER_H

#include "app.h"

/* Binds cfg.listen and starts serving. Returns 0, or a negative code with err set. */
int lf_server_start(struct lf_app *app, struct lf_err *err);
/* Begins draining: every answer from now on closes its connection, so keep-alive clients
 * leave. Callable from any thread. */
void lf_server_drain_begin(struct lf_app *app);
/* 1 while draining. */
int lf_server_draining(const struct lf_app *app);
/* Stops accepting new connections; requests in progress go on. */
void lf_server_quiesce(struct lf_app *app);
/* Requests received and not yet completed (including suspended ones). */
int lf_server_active(struct lf_app *app);
/* Closes every connection and stops the threads. */
void lf_server_stop(struct lf_app *app);
/* The port actually bound (useful with port 0). */
int lf_server_port(struct lf_app *app);

#endif
