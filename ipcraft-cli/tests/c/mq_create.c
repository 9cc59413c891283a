/* Creates a queue with the given attributes, exclusively, mode 0600.
 * usage: mq_create /name MAXMSG MSGSIZE */
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char *argv[]) {
    if (argc != 4) { fprintf(stderr, "usage: %s /name maxmsg msgsize\n", argv[0]); return 2; }
    struct mq_attr attr = { .mq_maxmsg = atol(argv[2]), .mq_msgsize = atol(argv[3]) };
    mqd_t q = mq_open(argv[1], O_CREAT | O_EXCL | O_RDWR, 0600, &attr);
    if (q == (mqd_t)-1) { perror("mq_open"); return 1; }
    return mq_close(q) == 0 ? 0 : 1;
}
