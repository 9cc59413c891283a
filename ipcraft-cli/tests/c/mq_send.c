/* Sends each TEXT/PRIO argument to an existing queue.
 * usage: mq_send /name TEXT/PRIO... */
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char *argv[]) {
    if (argc < 3) { fprintf(stderr, "usage: %s /name text/prio...\n", argv[0]); return 2; }
    mqd_t q = mq_open(argv[1], O_WRONLY);
    if (q == (mqd_t)-1) { perror("mq_open"); return 1; }
    for (int i = 2; i < argc; i++) {
        char *slash = strrchr(argv[i], '/');
        if (!slash) { fprintf(stderr, "no /PRIO in %s\n", argv[i]); return 2; }
        *slash = '\0';
        if (mq_send(q, argv[i], strlen(argv[i]), (unsigned)atoi(slash + 1)) == -1) { perror("mq_send"); return 1; }
    }
    return 0;
}
