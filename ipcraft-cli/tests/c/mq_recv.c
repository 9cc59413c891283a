/* Receives COUNT messages and prints each as PRIO<TAB>TEXT.
 * usage: mq_recv /name COUNT */
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char *argv[]) {
    if (argc != 3) { fprintf(stderr, "usage: %s /name count\n", argv[0]); return 2; }
    mqd_t q = mq_open(argv[1], O_RDONLY);
    if (q == (mqd_t)-1) { perror("mq_open"); return 1; }
    struct mq_attr attr;
    if (mq_getattr(q, &attr) == -1) { perror("mq_getattr"); return 1; }
    char *buf = malloc(attr.mq_msgsize);
    for (int i = 0; i < atoi(argv[2]); i++) {
        unsigned prio;
        ssize_t n = mq_receive(q, buf, attr.mq_msgsize, &prio);
        if (n == -1) { perror("mq_receive"); return 1; }
        printf("%u\t%.*s\n", prio, (int)n, buf);
    }
    return 0;
}
