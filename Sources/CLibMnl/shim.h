#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <linux/neighbour.h>
#include <linux/veth.h>
