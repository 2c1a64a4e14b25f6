// SPDX-License-Identifier: Apache-2.0
/*
 * Paced loopback TCP churn for the default-probe-set bench: each connection is
 * connect + accept + close on both sides (a normal FIN close, no payload), so
 * the tcp probe sees one connect, one accept and two close records.
 *
 *   tcp_churn <connections/s> <seconds>
 *     -> "conns <n> <elapsed_ns> <failed> <cpu_ns>" (cpu: this process, user+sys)
 *
 * Destination addresses rotate over 127.0.0.1..127.0.0.254 so TIME_WAIT
 * sockets never exhaust the ephemeral ports.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	socklen_t alen = sizeof(addr);
	long long rate, total, i, t0, t1, failed = 0;
	double secs, period;
	int lfd, one = 1;

	if (argc < 3) {
		fprintf(stderr, "usage: tcp_churn <connections/s> <seconds>\n");
		return 2;
	}
	rate = atoll(argv[1]);
	secs = atof(argv[2]);
	total = (long long)(rate * secs);
	period = 1e9 / (double)rate;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	addr.sin_addr.s_addr = htonl(INADDR_ANY);
	addr.sin_port = 0;
	if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) || listen(lfd, 4096)) {
		perror("listen");
		return 1;
	}
	getsockname(lfd, (struct sockaddr *)&addr, &alen);

	t0 = now_ns();
	for (i = 0; i < total; i++) {
		long long due = t0 + (long long)(period * (double)i);
		struct sockaddr_in dst = addr;
		int c, s;

		while (now_ns() < due) {
			struct timespec ts = { 0, 50000 };

			if (due - now_ns() > 200000)
				nanosleep(&ts, NULL);
		}
		dst.sin_addr.s_addr = htonl(0x7f000001 + (uint32_t)(i % 254));
		c = socket(AF_INET, SOCK_STREAM, 0);
		if (c < 0 || connect(c, (struct sockaddr *)&dst, sizeof(dst)) != 0) {
			failed++;
			if (c >= 0)
				close(c);
			continue;
		}
		s = accept(lfd, NULL, NULL);
		close(c);
		if (s >= 0)
			close(s);
	}
	t1 = now_ns();
	{
		struct rusage ru;

		getrusage(RUSAGE_SELF, &ru);
		printf("conns %lld %lld %lld %lld\n", total - failed, t1 - t0, failed,
		       (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
			       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL);
	}
	close(lfd);
	return 0;
}
