// SPDX-License-Identifier: Apache-2.0
/*
 * Syscall-heavy loop for the probe benches: a long-lived process driven over
 * stdin so its pid is known before a bench BPF object is loaded (the object
 * filters on it through a const volatile).
 *
 *   syscall_loop [cpu]       pin to `cpu` (optional), print "ready <pid>"
 *   stdin "run N"            N getppid() calls flat out   -> "done N <ns>"
 *   stdin "pace N R"         N getppid() calls at R calls/s -> "done N <ns>"
 *   stdin "open N PATH"      N open(PATH, O_RDONLY) + close flat out -> "done N <ns>"
 *   stdin "quit"
 *
 * getppid is issued through syscall(2) so libc can never cache it.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <fcntl.h>
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
	char line[4352];
	char path[4096];

	if (argc > 1) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(atoi(argv[1]), &set);
		if (sched_setaffinity(0, sizeof(set), &set) != 0)
			perror("sched_setaffinity");
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready %d\n", getpid());

	while (fgets(line, sizeof(line), stdin)) {
		long long n = 0, rate = 0, t0, t1, i;

		if (strncmp(line, "quit", 4) == 0)
			break;
		if (sscanf(line, "run %lld", &n) == 1 && strncmp(line, "run", 3) == 0) {
			t0 = now_ns();
			for (i = 0; i < n; i++)
				syscall(SYS_getppid);
			t1 = now_ns();
			printf("done %lld %lld\n", n, t1 - t0);
		} else if (sscanf(line, "open %lld %4095s", &n, path) == 2) {
			t0 = now_ns();
			for (i = 0; i < n; i++) {
				int fd = open(path, O_RDONLY);

				if (fd >= 0)
					close(fd);
			}
			t1 = now_ns();
			printf("done %lld %lld\n", n, t1 - t0);
		} else if (sscanf(line, "pace %lld %lld", &n, &rate) == 2 && rate > 0) {
			double period = 1e9 / (double)rate;

			t0 = now_ns();
			for (i = 0; i < n; i++) {
				long long due = t0 + (long long)(period * (double)i);

				while (now_ns() < due)
					;
				syscall(SYS_getppid);
			}
			t1 = now_ns();
			printf("done %lld %lld\n", n, t1 - t0);
		} else {
			printf("error %s", line);
		}
	}
	return 0;
}
